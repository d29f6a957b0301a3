import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import AuditEvent
from contracts.models import ContractDocument
from contracts.services import contract_document_add
from portal.errors import DomainError

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 20
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20


def stored_files(tmp_path):
    media = tmp_path / "media"
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def add(contract, actor, content, name="file.pdf", **kwargs):
    return contract_document_add(
        contract=contract,
        uploaded_file=SimpleUploadedFile(name, content),
        title=kwargs.pop("title", "Signed agreement"),
        kind=kwargs.pop("kind", "signed_contract"),
        actor=actor,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "content_type"),
    [(PDF, "application/pdf"), (PNG, "image/png"), (JPEG, "image/jpeg")],
)
def test_document_type_is_judged_by_content(
    contract, account_manager, tmp_path, content, content_type
):
    document = add(contract, account_manager, content, name="whatever.bin")
    assert (document.content_type, document.size) == (content_type, len(content))
    assert document.file.read() == content
    assert document.organization_id == contract.organization_id
    assert AuditEvent.all_objects.filter(action="contract.document_added").count() == 1
    assert len(stored_files(tmp_path)) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content",
    [b"MZ\x90\x00 a windows program", b"<html>%PDF-</html>", b"PK\x03\x04 a zip named .pdf"],
)
def test_other_types_are_refused_and_nothing_is_stored(
    contract, account_manager, tmp_path, content
):
    with pytest.raises(DomainError) as error:
        add(contract, account_manager, content, name="contract.pdf")
    assert error.value.field == "file"
    assert "Only PDF, PNG and JPEG" in error.value.message
    assert not ContractDocument.all_objects.exists()
    assert stored_files(tmp_path) == []


@pytest.mark.django_db
def test_too_large_is_refused_naming_the_limit(contract, account_manager, settings, tmp_path):
    settings.CONTRACT_DOCUMENT_MAX_BYTES = 1024 * 1024
    with pytest.raises(DomainError) as error:
        add(contract, account_manager, PDF + b"0" * (1024 * 1024))
    assert error.value.field == "file"
    assert "at most 1.0 MiB" in error.value.message
    assert not ContractDocument.all_objects.exists()
    assert stored_files(tmp_path) == []


@pytest.mark.django_db
def test_title_and_kind_are_required(contract, account_manager, tmp_path):
    with pytest.raises(DomainError) as error:
        add(contract, account_manager, PDF, title="  ")
    assert error.value.field == "title"
    with pytest.raises(DomainError) as error:
        add(contract, account_manager, PDF, kind="invoice")
    assert error.value.field == "kind"
    assert stored_files(tmp_path) == []
