// Copy buttons for the feed directory: the addresses stay selectable text without this script.
(function () {
  "use strict";
  var status = document.querySelector(".copy-status");

  function tell(message) {
    if (status) { status.textContent = message; }
  }

  function copy(field) {
    field.select();
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(field.value);
    }
    return document.execCommand("copy") ? Promise.resolve() : Promise.reject(new Error("copy"));
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var label = document.querySelector("label[for='" + field.id + "']");
      var what = label ? label.textContent : "text";
      copy(field).then(function () { tell("Copied: " + what); },
                       function () { tell("Selected: " + what + ". Press Ctrl+C or ⌘C to copy."); });
    });
  });
})();
