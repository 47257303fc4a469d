// Ask before irreversible or over-capacity actions (buttons with data-confirm). Forms still work without JS.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-confirm]");
  if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
});

// Behaviour wired here rather than in onclick=/onchange= attributes: the Content-Security-Policy forbids inline script.
document.addEventListener("change", (event) => {
  const field = event.target.closest("[data-autosubmit]");
  if (field && field.form) field.form.submit();
});
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});
// Capacity meters carry their fill in data-width: a style="" attribute would need 'unsafe-inline' styles.
for (const bar of document.querySelectorAll(".meter [data-width]")) bar.style.width = `${bar.dataset.width}%`;
// Ticking a reminder time means "these times", not the kind's defaults (event form).
document.addEventListener("change", (event) => {
  const box = event.target.closest("[data-selects]");
  const radio = box && document.getElementById(box.dataset.selects);
  if (radio) radio.checked = true;
});
