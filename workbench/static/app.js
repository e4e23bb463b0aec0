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

  // Actions that cannot be undone (promote, roll back, revoke, merge, archive, remove) ask
  // first: the button's data-confirm, else its form's. Without scripts they submit directly,
  // as every form does.
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = (button && button.getAttribute("data-confirm")) ||
      (event.target && event.target.getAttribute && event.target.getAttribute("data-confirm"));
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // On a narrow screen the navigation scrolls sideways: keep the current page's link in view.
  var current = document.querySelector(".mainnav [aria-current]");
  if (current && current.parentNode.scrollWidth > current.parentNode.clientWidth) {
    current.parentNode.scrollLeft = current.offsetLeft - current.parentNode.offsetLeft - 16;
  }

  // The import page: a file over the server's limit is refused before it is sent (the server
  // refuses it too, with 413, but only after the browser has sent it).
  document.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
    input.addEventListener("change", function () {
      var max = Number(input.getAttribute("data-max-bytes"));
      var file = input.files && input.files[0];
      input.setCustomValidity(file && file.size > max
        ? "This file is larger than the " + Math.round(max / 1048576) + " MiB the server accepts; use tagger import for it."
        : "");
      input.reportValidity();
    });
  });

  // "/" jumps to search, on every page.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    // On the review page of a large taxonomy, "/" finds a tag instead.
    var search = document.querySelector("[data-tag-filter]") || document.querySelector("[data-search]");
    event.preventDefault();
    if (search) {
      search.focus();
      search.select();
    } else {
      var project = document.querySelector("select[data-navigate]");
      if (project && project.value) window.location.href = "/p/" + encodeURIComponent(project.value) + "/tickets";
    }
  });

  // A single-choice tag group (Type, Priority) takes one tag: ticking one clears the
  // group's others, on the review and ticket pages. The store refuses two anyway; this keeps
  // the form from asking.
  var singleChoice = function (box) {
    var group = box.closest("fieldset[data-single-choice]");
    if (!group || !box.checked || box.type === "radio") return;
    group.querySelectorAll('input[name="tags"]').forEach(function (other) {
      if (other !== box) other.checked = false;
    });
  };
  document.addEventListener("change", function (event) {
    if (event.target.name === "tags") singleChoice(event.target);
  });

  // The review page: 1–9 and the letters shown toggle tags, Enter confirms, s skips, u
  // undoes; with more tags than keys, "/" opens a filter that finds any tag by name.
  var review = document.querySelector("form[data-review]");
  if (review) {
    var filter = document.querySelector("[data-tag-filter]");
    var toggle = function (box) {
      box.checked = box.type === "radio" ? true : !box.checked;
      singleChoice(box);
    };
    var matches = function () {
      var text = filter ? filter.value.trim().toLowerCase() : "";
      var shown = [];
      review.querySelectorAll("label[data-choice]").forEach(function (label) {
        var hit = !text || label.dataset.choice.indexOf(text) !== -1;
        label.hidden = !hit;
        if (hit) shown.push(label);
      });
      return shown;
    };
    if (filter) {
      filter.addEventListener("input", matches);
      filter.addEventListener("keydown", function (event) {
        if (event.key === "Enter") {
          event.preventDefault();
          if (!filter.value.trim()) {
            review.requestSubmit(review.querySelector('button[value="confirm"]'));
            return;
          }
          var first = matches()[0];
          if (first) toggle(first.querySelector('input[name="tags"]'));
          filter.value = "";
          matches();
        } else if (event.key === "Escape") {
          event.preventDefault();
          filter.value = "";
          matches();
          filter.blur();
        }
      });
    }
    document.addEventListener("keydown", function (event) {
      if (event.target === filter) return;
      if (typing(event) && event.key !== "Enter") return;
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "Enter") {
        event.preventDefault();
        review.requestSubmit(review.querySelector('button[value="confirm"]'));
      } else if (event.key === "s") {
        var skip = document.querySelector("form[data-skip]");
        if (skip) { event.preventDefault(); skip.submit(); }
      } else if (event.key === "u") {
        var undo = document.querySelector("form[data-undo]");
        if (undo) { event.preventDefault(); undo.submit(); }
      } else if (/^[1-9a-z]$/.test(event.key)) {
        var box = review.querySelector('input[name="tags"][data-key="' + event.key + '"]');
        if (box) {
          event.preventDefault();
          toggle(box);
        }
      }
    });
  }
})();
