"""factory_boy factories shared by the whole suite."""

from datetime import date
from decimal import Decimal

import factory
from allauth.account.models import EmailAddress

from accounts.models import Membership, Organization, Role, StaffRole, User

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    full_name = factory.Faker("name")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def verified(obj, create, extracted, **kwargs):
        if create:
            obj.save()
            if extracted is not False:
                EmailAddress.objects.create(user=obj, email=obj.email, verified=True, primary=True)


class StaffUserFactory(UserFactory):
    staff_role = StaffRole.ACCOUNT_MANAGER


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


# --- Catalog and contracts -------------------------------------------------------------------
class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "quotas.Region"
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"test-{n}")
    name = factory.Sequence(lambda n: f"Test Region {n}")


class GpuSkuFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "quotas.GpuSku"
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"gpu-{n}")
    name = factory.Sequence(lambda n: f"GPU {n}")
    memory_gb = 80
    interconnect = "NVLink"
    gpus_per_node = 8
    sold_in_whole_nodes = True
    list_price_per_gpu_hour = factory.LazyFunction(lambda: Decimal("2.5000"))


class CapacityPoolFactory(factory.django.DjangoModelFactory):
    """A pool without capacity: add it with ``quotas.capacity.capacity_change_add``."""

    class Meta:
        model = "quotas.CapacityPool"
        django_get_or_create = ("region", "sku")

    region = factory.SubFactory(RegionFactory)
    sku = factory.SubFactory(GpuSkuFactory)


class ContractFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "contracts.Contract"

    organization = factory.SubFactory(OrganizationFactory)
    number = factory.Sequence(lambda n: f"C-{n:05d}")
    status = "active"
    term_start = factory.LazyFunction(lambda: date(2020, 1, 1))
    term_end = factory.LazyFunction(lambda: date(2040, 1, 1))
    currency = "USD"
    committed_spend = factory.LazyFunction(lambda: Decimal("1000000.00"))


class ContractRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "contracts.ContractRate"

    contract = factory.SubFactory(ContractFactory)
    sku = factory.SubFactory(GpuSkuFactory)
    region = None
    price_per_gpu_hour = factory.LazyFunction(lambda: Decimal("2.0000"))
