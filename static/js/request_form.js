// The request form shows only the fields of the chosen kind of request. Without JavaScript
// both groups stay visible and the server ignores the ones that do not apply.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("request-form");
  if (!form) return;
  const sync = () => {
    const checked = form.querySelector('input[name="kind"]:checked');
    const kind = checked ? checked.value : "reservation";
    form.querySelectorAll(".kind-reservation").forEach((el) => {
      el.hidden = kind !== "reservation";
    });
    form.querySelectorAll(".kind-quota").forEach((el) => {
      el.hidden = kind !== "quota_increase";
    });
  };
  form.addEventListener("change", sync);
  sync();
});
