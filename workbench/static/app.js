// Keyboard shortcuts and small conveniences. Every page works without this file.
(function () {
  "use strict";
  function typing(event) {
    var t = event.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }

  // The project switcher and period pickers submit on change.
  document.querySelectorAll("select[data-navigate]").forEach(function (select) {
    select.addEventListener("change", function () {
      if (select.value) window.location.href = "/p/" + encodeURIComponent(select.value) + "/dashboard";
    });
  });
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // "/" jumps to search, on every page.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    var search = document.querySelector("[data-search]");
    event.preventDefault();
    if (search) {
      search.focus();
      search.select();
    } else {
      var project = document.querySelector("select[data-navigate]");
      if (project && project.value) window.location.href = "/p/" + encodeURIComponent(project.value) + "/tickets";
    }
  });

  // The review page: number keys toggle tags, Enter confirms, s skips, u undoes.
  var review = document.querySelector("form[data-review]");
  if (review) {
    document.addEventListener("keydown", function (event) {
      if (typing(event) && event.key !== "Enter") return;
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      var n = parseInt(event.key, 10);
      if (!isNaN(n) && n >= 1 && n <= 9) {
        var box = review.querySelector('input[name="tags"][data-key="' + n + '"]');
        if (box) {
          event.preventDefault();
          box.checked = box.type === "radio" ? true : !box.checked;
        }
      } else if (event.key === "Enter") {
        event.preventDefault();
        review.requestSubmit(review.querySelector('button[value="confirm"]'));
      } else if (event.key === "s") {
        var skip = document.querySelector("form[data-skip]");
        if (skip) { event.preventDefault(); skip.submit(); }
      } else if (event.key === "u") {
        var undo = document.querySelector("form[data-undo]");
        if (undo) { event.preventDefault(); undo.submit(); }
      }
    });
  }
})();
