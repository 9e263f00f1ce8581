// The console's only script: a button shows it is working once its form is submitted (and cannot be pressed
// twice); a drop asks first; an image that cannot load is marked instead of showing a broken icon.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  if (button && form.method.toLowerCase() === "post") {
    button.classList.add("is-busy");
    button.setAttribute("aria-pressed", "true");
    setTimeout(() => { button.disabled = true; }, 0); // after the browser took the form's data
  }
});
document.addEventListener("error", (event) => {
  const img = event.target;
  if (img instanceof HTMLImageElement && img.classList.contains("element-img")) {
    img.classList.add("is-broken");
    img.title = "Image not reachable: " + img.src;
  }
}, true);
// Back from the next page (the browser's page cache): the buttons are ready again.
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  for (const button of document.querySelectorAll("button[aria-pressed=true]")) {
    button.disabled = false;
    button.classList.remove("is-busy");
    button.removeAttribute("aria-pressed");
  }
});
