// Show only the fields of the chosen kind of roster connection. Without this
// script every field shows and the server ignores the other kinds' fields.
(function () {
  "use strict";
  function setUp() {
    var data = document.getElementById("roster-kind-fields");
    var select = document.getElementById("id_kind");
    if (!data || !select) {
      return;
    }
    var byKind = JSON.parse(data.textContent);
    var specific = {};
    Object.keys(byKind).forEach(function (kind) {
      byKind[kind].forEach(function (name) { specific[name] = true; });
    });
    function show() {
      var wanted = byKind[select.value] || [];
      Object.keys(specific).forEach(function (name) {
        document.querySelectorAll(".form-row.field-" + name).forEach(function (row) {
          var visible = wanted.indexOf(name) !== -1;
          row.hidden = !visible;
          row.style.display = visible ? "" : "none";
        });
      });
      document.querySelectorAll("fieldset.module").forEach(function (fieldset) {
        var rows = fieldset.querySelectorAll(".form-row");
        var anyVisible = rows.length === 0;
        rows.forEach(function (row) { anyVisible = anyVisible || !row.hidden; });
        fieldset.hidden = !anyVisible;
        fieldset.style.display = anyVisible ? "" : "none";
      });
    }
    select.addEventListener("change", show);
    show();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
