// keygate console: the copy button beside a secret shown once. The only
// script the console has; loaded from the console itself (the CSP allows
// no inline script), and the console works without it.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var id = button.getAttribute("data-copy");
  var source = document.getElementById(id);
  var status = document.getElementById(id + "-status");
  if (!source) return;
  var text = source.textContent.trim();
  function told(message) {
    if (status) status.textContent = message;
  }
  function bySelection() {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      document.execCommand("copy");
      told("Copied to the clipboard.");
    } catch (e) {
      told("Selected: press Ctrl+C (or Cmd+C) to copy.");
    }
  }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(function () {
      told("Copied to the clipboard.");
    }, bySelection);
  } else {
    bySelection();
  }
});
