// Progressive enhancement only: every page works without this file.
"use strict";

// Sections marked data-live="<url>" are refreshed from that page every few seconds:
// the same server-rendered HTML, swapped in place, so nothing is drawn twice.
function refreshLive() {
  document.querySelectorAll("[data-live]").forEach(async (section) => {
    try {
      const response = await fetch(section.dataset.live, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.querySelector(`[data-live="${section.dataset.live}"]`);
      if (fresh) section.replaceWith(fresh);
    } catch (error) {
      // Offline or signed out: keep what is shown.
    }
  });
}
if (document.querySelector("[data-live]")) setInterval(refreshLive, 5000);

// Buttons marked data-copy copy the text of the element they name.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (source && navigator.clipboard) {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  }
});

// Forms marked data-confirm ask before they are sent.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
