// Cairn console: the few behaviours plain HTML forms lack. Pages work without it.
(function () {
  "use strict";
  var modes = { yaml: "yaml", json: { name: "javascript", json: true }, properties: "properties",
    toml: "toml", xml: "xml", html: { name: "xml", htmlMode: true }, text: null };

  // A select or input marked data-autosubmit submits its form when changed.
  document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });

  // Buttons marked data-confirm ask first.
  document.querySelectorAll("[data-confirm]").forEach(function (el) {
    el.addEventListener("click", function (event) {
      if (!window.confirm(el.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });

  if (!window.CodeMirror) { return; }
  document.querySelectorAll("textarea[data-editor]").forEach(function (area) {
    var format = area.getAttribute("data-format") || "text";
    var readOnly = area.hasAttribute("readonly");
    var editor = CodeMirror.fromTextArea(area, {
      lineNumbers: true, mode: modes[format] || null, readOnly: readOnly,
      viewportMargin: 50, lineWrapping: false, indentWithTabs: false,
      extraKeys: { Tab: function (cm) { cm.replaceSelection("  "); } }
    });
    area.setAttribute("data-ready", "true");
    // The mode follows the format picked, or, while none is (a new config), the data
    // id's extension, as the server will pick it.
    var select = document.getElementById(area.getAttribute("data-format-select") || "");
    var dataId = document.getElementById("data_id");
    var byName = { yml: "yaml", yaml: "yaml", json: "json", properties: "properties", toml: "toml",
      xml: "xml", html: "html", htm: "html" };
    function follow() {
      var format = select && select.value;
      if (!format && dataId) { format = byName[(dataId.value.split(".").pop() || "").toLowerCase()]; }
      editor.setOption("mode", modes[format] || null);
    }
    if (select) { select.addEventListener("change", follow); }
    if (dataId) { dataId.addEventListener("input", follow); }
    if (select || dataId) { follow(); }
    // The server's validation error, at its line and column.
    var line = parseInt(area.getAttribute("data-error-line") || "", 10);
    if (line > 0) {
      var column = parseInt(area.getAttribute("data-error-column") || "1", 10);
      editor.addLineClass(line - 1, "background", "cm-error-line");
      editor.setCursor({ line: line - 1, ch: Math.max(column - 1, 0) });
      editor.focus();
    }
    // Ctrl/Cmd+S saves: submits the form the editor is in, by its default button.
    if (!readOnly) {
      editor.setOption("extraKeys", Object.assign({}, editor.getOption("extraKeys"), {
        "Ctrl-S": function () { save(area.form); }, "Cmd-S": function () { save(area.form); }
      }));
    }
  });

  function save(form) {
    var submit = form.querySelector("button[type=submit].primary");
    if (submit) { submit.click(); } else { form.submit(); }
  }
})();
