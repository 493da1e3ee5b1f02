// Confirmation dialogs for the dashboard's actions. A button with data-dialog="ID" opens the
// <dialog id="ID"> as a modal (focus moves into it, Escape closes it); [data-close] closes it.
// Inside a form, the form is checked first, and [data-bind="FIELD-ID"] shows that field's value
// (a select's chosen option) so the dialog says exactly what will change.
(function () {
  "use strict";

  function fieldText(id) {
    const field = document.getElementById(id);
    if (!field) return "";
    if (field.tagName === "SELECT") return field.options[field.selectedIndex].text;
    return field.value;
  }

  function open(button) {
    const dialog = document.getElementById(button.dataset.dialog);
    if (!dialog) return;
    const form = button.closest("form");
    if (form && !dialog.querySelector("form") && !form.reportValidity()) return;
    dialog.querySelectorAll("[data-bind]").forEach(function (el) {
      el.textContent = fieldText(el.dataset.bind);
    });
    dialog.showModal();
  }

  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-dialog]");
    if (opener) {
      event.preventDefault();
      open(opener);
      return;
    }
    const closer = event.target.closest("[data-close]");
    if (closer) {
      event.preventDefault();
      closer.closest("dialog").close();
    }
  });
})();
