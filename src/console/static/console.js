// The console's only script of its own: "select every member on this page". Everything works
// without it (and without htmx): "All in this view" is a plain checkbox the server reads.
document.addEventListener("change", function (e) {
  var t = e.target;
  if (t && t.id === "select-page") {
    document.querySelectorAll('#members input[name="member"]').forEach(function (c) {
      c.checked = t.checked;
    });
  }
});
