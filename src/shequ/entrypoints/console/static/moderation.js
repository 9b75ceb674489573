/* shequ console, review queue work mode: P pass, B block, E escalate choose the decision
   and put the prefilled reason in focus (Enter submits it); N or J moves to the next case.
   Keys typed into a field are left alone; Escape leaves the field. */
(function () {
  "use strict";

  var form = document.getElementById("decision-form");
  if (!form) {
    return;
  }
  var reason = document.getElementById("decision-reason");
  var action = document.getElementById("decision-action");
  var chosen = document.getElementById("chosen-action");
  var edited = reason.value !== "";
  var KEYS = { p: "pass", b: "block", e: "escalate" };

  function show(what) {
    chosen.textContent = what ? "· " + chosen.dataset[what] : "(" + chosen.dataset.none + ")";
    form.querySelectorAll("[data-choice]").forEach(function (button) {
      button.classList.toggle("is-chosen", button.dataset.choice === what);
    });
  }

  function choose(what) {
    if (!form.querySelector("[data-choice='" + what + "']")) {
      return;
    }
    action.value = what;
    if (!edited) {
      reason.value = form.dataset["reason" + what.charAt(0).toUpperCase() + what.slice(1)];
    }
    show(what);
    reason.focus();
    reason.select();
  }

  reason.addEventListener("input", function () { edited = reason.value !== ""; });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
      return;
    }
    var target = event.target;
    if (target.closest && target.closest("input, textarea, select")) {
      if (event.key === "Escape") {
        target.blur();
      }
      return;
    }
    var key = (event.key || "").toLowerCase();
    if (KEYS[key]) {
      event.preventDefault();
      choose(KEYS[key]);
    } else if (key === "n" || key === "j") {
      var next = document.getElementById("next-case");
      if (next) {
        event.preventDefault();
        next.click();
      }
    }
  });

  form.addEventListener("submit", function (event) {
    var by = event.submitter;
    if ((!by || !by.value) && !action.value) {
      event.preventDefault();
      show("");
      chosen.classList.add("text-danger");
    }
  });

  show(action.value);
})();
