// "Generate monthly report": POST, then follow the status resource until the PDF is ready.
(function () {
  "use strict";
  const form = document.getElementById("report-form");
  if (!form) return;
  const button = document.getElementById("generate");
  const error = document.getElementById("month-error");
  const box = document.getElementById("report-progress");
  const bar = document.getElementById("report-bar");
  const status = document.getElementById("report-status");
  const link = document.getElementById("report-download");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  function show(report) {
    box.hidden = false;
    bar.value = report.progress;
    // role=status + aria-live: screen readers hear each change of state.
    status.textContent = report.state === "failed" ? report.message : report.message + " (" + report.progress + "%)";
    if (report.download_url) {
      link.href = report.download_url;
      link.hidden = false;
      status.textContent = "Your report is ready.";
    }
  }

  async function follow(url) {
    let delay = 500;
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 1.5, 5000); // back off: a long report is not polled hard
      let response;
      try {
        response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      } catch (e) {
        status.textContent = "Connection lost; retrying…";
        continue;
      }
      if (!response.ok) {
        status.textContent = "Could not read the report's progress (HTTP " + response.status + ").";
        return;
      }
      const report = await response.json();
      show(report);
      if (report.state === "ready" || report.state === "failed") return;
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    error.hidden = true;
    link.hidden = true;
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: { "X-CSRFToken": csrf, Accept: "application/json" },
        body: new FormData(form),
        credentials: "same-origin",
      });
      const body = await response.json();
      if (response.status === 202) {
        show(body);
        await follow(response.headers.get("Location") || body.status_url);
      } else if (response.status === 400) {
        error.textContent = (body.errors.month || body.errors.__all__ || ["Invalid input."]).join(" ");
        error.hidden = false;
      } else if (response.status === 429) {
        error.textContent = body.error + " (retry in " + response.headers.get("Retry-After") + " s)";
        error.hidden = false;
      } else if (response.status === 401) {
        window.location.href = body.login_url + "?next=" + encodeURIComponent(window.location.pathname);
      } else {
        error.textContent = "Something went wrong (HTTP " + response.status + ").";
        error.hidden = false;
      }
    } finally {
      button.disabled = false;
    }
  });
})();
