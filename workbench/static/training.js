// Live progress of a training run: polls the run's JSON once a second and updates the page;
// reloads once the run has ended so the new version's figures appear. Without JavaScript the
// page has a Refresh link instead.
(function () {
  "use strict";
  const panel = document.getElementById("run");
  if (!panel || panel.dataset.final === "true") return;
  const url = panel.dataset.progressUrl;
  const text = (id, value) => {
    const node = document.getElementById(id);
    if (node) node.textContent = value;
  };
  async function poll() {
    try {
      const response = await fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(response.status);
      const run = await response.json();
      if (run.final) {
        window.location.reload();
        return;
      }
      const bar = document.getElementById("run-bar");
      if (bar && run.percent !== null) bar.value = run.percent;
      text("run-status", run.status);
      document.getElementById("run-status").className = "status " + run.status;
      text("run-summary", run.summary);
      text("run-eta", run.eta_text || "");
      text("run-attempts", String(run.attempts));
      text("run-worker", run.worker || "–");
    } catch (error) {
      text("run-eta", "cannot reach the server; retrying…");
    }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 1000);
})();
