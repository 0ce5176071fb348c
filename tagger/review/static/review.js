// tagger review: keyboard shortcuts and the live category search. The pages work without it.
(function () {
  "use strict";

  function typing(target) {
    return target && (target.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(target.tagName));
  }

  function submit(id) {
    var form = document.getElementById(id);
    if (form) { form.requestSubmit(); }
  }

  var keys = {
    a: function () { submit("accept-form"); },
    r: function () { submit("reject-form"); },
    u: function () { submit("undo-form"); },
    n: function () { var link = document.getElementById("next-link") || document.getElementById("start"); if (link) { link.click(); } },
    c: function () { var box = document.getElementById("cat-q"); if (box) { box.focus(); } },
    "/": function () { var box = document.getElementById("filter"); if (box) { box.focus(); } },
  };

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var action = keys[event.key.toLowerCase()];
    if (action) { event.preventDefault(); action(); }
  });

  // Category search as you type: the server searches the taxonomy (fast on 10,000+ categories), and the results
  // become buttons of the set_category form. Built with textContent: a category path is never markup.
  var box = document.getElementById("cat-q");
  var results = document.getElementById("cat-results");
  if (box && results) {
    var timer = null;
    var asked = 0;
    box.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var mine = ++asked;
        fetch("/api/categories?limit=30&q=" + encodeURIComponent(box.value), { credentials: "same-origin" })
          .then(function (response) { return response.json(); })
          .then(function (hits) {
            if (mine !== asked) { return; }  // an older answer arriving late
            results.replaceChildren();
            hits.forEach(function (hit) {
              var button = document.createElement("button");
              button.type = "submit";
              button.name = "new_value";
              button.value = hit.id;
              button.textContent = hit.path;
              results.appendChild(button);
            });
          });
      }, 120);
    });
    box.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" && results.firstElementChild) { event.preventDefault(); results.firstElementChild.focus(); }
    });
  }

  var choose = document.getElementById("add-attribute");
  if (choose) {
    choose.addEventListener("change", function () { if (choose.value) { choose.form.requestSubmit(); } });
  }
})();
