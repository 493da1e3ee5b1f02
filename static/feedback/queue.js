// The feedback queue: tick-all, "/" to search, and focus kept sensible across htmx swaps.
// Loaded with `defer` after htmx (templates/base.html); everything also works without it.
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var all = event.target;
    if (all.id !== "select-all") return;
    document.querySelectorAll('#queue-results input[name="ids"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var active = document.activeElement;
    if (active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) return;
    var search = document.getElementById("id_q");
    if (search) {
      event.preventDefault();
      search.focus();
    }
  });

  // After a bulk change the table is replaced: put focus on the outcome, not on <body>.
  document.addEventListener("htmx:afterSwap", function (event) {
    var source = event.detail && event.detail.requestConfig && event.detail.requestConfig.elt;
    if (source && source.id === "bulk-form") {
      var status = document.getElementById("queue-status");
      if (status) {
        status.setAttribute("tabindex", "-1");
        status.focus();
      }
    }
  });
})();
