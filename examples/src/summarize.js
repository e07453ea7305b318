// The summarize page's script (served as /summarize.js: the page's CSP allows no inline
// script). The session cookie rides along by itself; the page never sees the token.
(function () {
  "use strict";
  var summary = document.getElementById("summary");
  document.getElementById("summarize").addEventListener("submit", function (event) {
    event.preventDefault();
    summary.className = "";
    summary.textContent = "…";
    // The session cookie rides along by itself; the page never sees the token.
    fetch("/summarize", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ text: document.getElementById("text").value })
    }).then(function (response) {
      if (response.status === 401) { location.replace("/sign-in?next=%2F"); return; }
      return response.text().then(function (text) {
        if (!response.ok) {
          summary.className = "error";
          try { text = JSON.parse(text).error_description || text; } catch (e) { /* plain text */ }
        }
        summary.textContent = text;
      });
    }, function () {
      summary.className = "error";
      summary.textContent = "The service cannot be reached.";
    });
  });
  document.getElementById("sign-out").addEventListener("click", function () {
    fetch("/sign-in", { method: "DELETE", credentials: "same-origin" }).then(function () {
      location.replace("/sign-in");
    });
  });
})();
