// "Copy" buttons next to a secret shown once: copy the text of the element named by
// data-copy-target and say so in the status element beside it. Without the Clipboard API the
// text is selected so the user can copy it by hand.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-copy-target]").forEach((button) => {
    const id = button.dataset.copyTarget;
    const source = document.getElementById(id);
    const status = document.querySelector(`[data-copy-status="${id}"]`);
    if (!source) return;
    const say = (text) => {
      if (status) status.textContent = text;
    };
    const selectText = () => {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    };
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        say(button.dataset.copiedLabel || "Copied");
      } catch {
        selectText();
        say("Selected: press Ctrl+C (⌘C on a Mac) to copy.");
      }
    });
  });
});
