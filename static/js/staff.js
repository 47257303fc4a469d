// Ask before irreversible or over-capacity actions (buttons with data-confirm). Forms still work without JS.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});
