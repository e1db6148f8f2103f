/// The console's stylesheet and script, served from the binary (no CDN: the console works offline).
enum AdminAssets {
    /// Readable on a phone: one column, tables scroll sideways.
    static let css = """
        body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f7f8fa; }
        header { display: flex; flex-wrap: wrap; gap: 1em; align-items: center; padding: .6em 1em;
          background: #1d2330; color: #fff; }
        header a { color: #cfe0ff; margin-right: .8em; }
        main { padding: 1em; max-width: 1100px; margin: auto; }
        h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; width: 100%; background: #fff; }
        th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid #e3e6ec; vertical-align: top; }
        form.inline { display: inline; margin: 0 .2em; }
        form.filter { display: flex; flex-wrap: wrap; gap: .5em; align-items: center; }
        input { font: inherit; padding: .3em; }
        button { font: inherit; padding: .25em .7em; cursor: pointer; }
        button.danger { color: #a40000; }
        .error { color: #a40000; } .done { color: #176b00; }
        pre { background: #fff; padding: .8em; overflow-x: auto; border: 1px solid #e3e6ec; }
        dl { display: grid; grid-template-columns: max-content 1fr; gap: .3em 1em; } dd { margin: 0; }
        """

    /// Refreshes the overview's tables every 2 s from `GET /admin/api/overview` (text only: never HTML).
    static let javascript = """
        "use strict";
        (function () {
          let last = null;
          function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }
          function fill(id, rows) {
            const body = document.querySelector("#" + id + " tbody");
            if (!body) return;
            body.replaceChildren(...rows);
          }
          function processed(data) { return data.workers.reduce((sum, w) => sum + w.tasks_done, 0); }
          async function refresh() {
            try {
              const response = await fetch("/admin/api/overview", { credentials: "same-origin" });
              if (!response.ok) return;
              const data = await response.json();
              document.getElementById("database").textContent = data.database;
              document.getElementById("redis").textContent = data.redis;
              const updated = document.getElementById("updated");
              updated.textContent = "read " + new Date(data.at * 1000).toISOString();
              updated.dataset.at = data.at;
              fill("queues", data.queues.map(q => {
                const row = document.createElement("tr"); row.dataset.queue = q.queue;
                const name = document.createElement("td"); const link = document.createElement("a");
                link.href = "/admin/queues/" + encodeURIComponent(q.queue); link.textContent = q.queue;
                name.appendChild(link); row.appendChild(name);
                for (const [field, key] of [["ready", "ready"], ["delayed", "delayed"], ["inFlight", "in_flight"], ["dead", "dead"]]) {
                  cell(row, String(q[key])).dataset.field = field;
                }
                cell(row, q.oldest_age_seconds.toFixed(1));
                return row;
              }));
              fill("workers", data.workers.map(w => {
                const row = document.createElement("tr");
                cell(row, w.host); cell(row, String(w.pid)); cell(row, w.lanes_busy + "/" + w.lanes);
                cell(row, String(w.tasks_done)); cell(row, w.queues.length ? w.queues.join(", ") : "all");
                cell(row, w.claiming ? "yes" : "no");
                return row;
              }));
              document.getElementById("tasks-done").textContent = String(processed(data));
              if (last) {
                const rate = Math.max(0, processed(data) - processed(last)) / Math.max(0.001, data.at - last.at);
                document.getElementById("tasks-rate").textContent = rate.toFixed(1);
              }
              last = data;
            } catch (error) { /* the next poll tries again */ }
          }
          refresh();
          setInterval(refresh, 2000);
        })();
        """
}
