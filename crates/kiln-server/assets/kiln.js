// Kiln's pages work without this script: it only makes them live, and the job log fast.
//
// - A page with `data-live` on its body listens to those Server-Sent Events and, on each
//   `changed`, fetches itself again and swaps its `data-live-part` elements.
// - The job log (#log) holds a few windows of the log (`.chunk`, 256 KiB each at most),
//   fetches the neighbours by byte range as the reader scrolls and drops the far ones, so a
//   100 MB log costs the browser what a few windows do; it follows a running job's output
//   (sticking to the end only while the reader is there) and searches the whole log on the
//   server, stepping through the matches.
"use strict";

(function () {
  const WINDOW = 256 * 1024;
  const WINDOW_LINES = 2000;
  const MAX_CHUNKS = 6;

  function livePage() {
    const url = document.body.dataset.live;
    if (!url || !window.EventSource) return;
    let busy = false;
    let again = false;
    async function refresh() {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        const response = await fetch(location.href, { credentials: "same-origin" });
        if (response.ok) {
          const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
          for (const part of document.querySelectorAll("[data-live-part][id]")) {
            const next = fresh.getElementById(part.id);
            if (next && next.innerHTML !== part.innerHTML && !part.contains(document.activeElement)) {
              part.replaceWith(next);
            }
          }
        }
      } catch (_) {
        // The server is away: the next event (after it reconnects) tries again.
      } finally {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      }
    }
    let opened = false;
    const events = new EventSource(url);
    events.addEventListener("changed", refresh);
    // After a reconnect (a server restart) changes may have been missed.
    events.addEventListener("open", () => {
      if (opened) refresh();
      opened = true;
    });
  }

  function jobLog() {
    const log = document.getElementById("log");
    if (!log) return;
    let size = Number(log.dataset.size);
    let complete = log.hasAttribute("data-complete");
    const chunks = () => log.querySelectorAll(":scope > .chunk");
    const first = () => chunks()[0];
    const last = () => chunks()[chunks().length - 1];
    const startOf = () => Number(first().dataset.start);
    const endOf = () => Number(last().dataset.end);
    for (const more of document.querySelectorAll(".log-more")) more.hidden = true;
    log.classList.add("windowed");

    function chunk(data) {
      const div = document.createElement("div");
      div.className = "chunk";
      div.dataset.start = data.start;
      div.dataset.end = data.end;
      div.dataset.lines = data.lines;
      div.innerHTML = data.html;
      return div;
    }
    async function fetchWindow(query) {
      const response = await fetch(log.dataset.window + "?" + query, { credentials: "same-origin" });
      if (!response.ok) throw new Error("the log answered " + response.status);
      const data = await response.json();
      size = Math.max(size, data.size);
      return data;
    }
    const atEnd = () => log.scrollHeight - log.scrollTop - log.clientHeight < 4;

    let loading = false;
    async function load(step) {
      if (loading) return;
      loading = true;
      try {
        await step();
      } catch (_) {
        // Scrolling again tries again.
      } finally {
        loading = false;
      }
    }
    const earlier = () => load(async () => {
      const start = startOf();
      if (start <= 0) return;
      const data = await fetchWindow("to=" + start);
      if (data.end !== start || data.end <= data.start) return;
      const before = log.scrollHeight;
      log.prepend(chunk(data));
      log.scrollTop += log.scrollHeight - before;
      while (chunks().length > MAX_CHUNKS) last().remove();
    });
    const later = () => load(async () => {
      const end = endOf();
      if (end >= size) return;
      const data = await fetchWindow("from=" + end);
      if (data.start !== end || data.end <= data.start) return;
      log.append(chunk(data));
      while (chunks().length > MAX_CHUNKS) {
        const gone = first();
        const height = gone.offsetHeight;
        gone.remove();
        log.scrollTop -= height;
      }
    });
    log.addEventListener("scroll", () => {
      if (log.scrollTop < log.clientHeight) earlier();
      if (log.scrollHeight - log.scrollTop - log.clientHeight < log.clientHeight) later();
    }, { passive: true });

    const target = location.hash.startsWith("#L") && document.getElementById(location.hash.slice(1));
    if (target) target.scrollIntoView({ block: "center" });
    else log.scrollTop = log.scrollHeight;

    function follow() {
      if (complete || !window.EventSource) return;
      const events = new EventSource(log.dataset.events + "?from=" + endOf());
      events.addEventListener("log", (event) => {
        const data = JSON.parse(event.data);
        size = Math.max(size, data.end);
        // The reader is elsewhere in the log: this part is fetched when they come back.
        if (data.start !== endOf()) return;
        const stick = atEnd();
        const tail = last();
        const lines = Number(tail.dataset.lines) + data.lines;
        if (Number(tail.dataset.end) - Number(tail.dataset.start) < WINDOW && lines <= WINDOW_LINES) {
          tail.insertAdjacentHTML("beforeend", data.html);
          tail.dataset.end = data.end;
          tail.dataset.lines = lines;
        } else {
          log.append(chunk(data));
        }
        if (stick) log.scrollTop = log.scrollHeight;
      });
      events.addEventListener("status", (event) => {
        const status = JSON.parse(event.data).status;
        const badge = document.querySelector("#job-heading .status");
        if (badge && !badge.classList.contains("status-" + status)) {
          badge.className = "status status-" + status;
          badge.lastChild.textContent = status;
        }
      });
      events.addEventListener("end", () => {
        complete = true;
        events.close();
      });
      events.addEventListener("error", () => {
        // Closed for good (not a reconnect in progress): start again from what we have.
        if (events.readyState === EventSource.CLOSED && !complete) setTimeout(follow, 3000);
      });
    }
    follow();
    search(log, fetchWindow, chunk);
  }

  function search(log, fetchWindow, chunk) {
    const form = document.querySelector(".log-search");
    if (!form) return;
    const status = form.querySelector(".search-status");
    const steps = form.querySelectorAll(".search-step");
    let needle = "";
    let hits = [];
    let at = -1;
    let more = false;

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = form.elements.q.value.trim();
      if (!text) return;
      if (text === needle && hits.length) return go(at + 1);
      status.textContent = "Searching…";
      try {
        const response = await fetch(log.dataset.search + "?q=" + encodeURIComponent(text), { credentials: "same-origin" });
        const data = await response.json();
        needle = text;
        hits = data.matches || [];
        more = data.more;
      } catch (_) {
        status.textContent = "The search failed";
        return;
      }
      for (const step of steps) step.hidden = hits.length === 0;
      if (!hits.length) {
        status.textContent = "No matches";
        return;
      }
      go(0);
    });
    for (const step of steps) {
      step.addEventListener("click", () => hits.length && go(at + Number(step.dataset.step)));
    }

    async function go(index) {
      at = (index + hits.length) % hits.length;
      const hit = hits[at];
      status.textContent = (at + 1) + " of " + hits.length + (more ? "+" : "");
      let line = document.getElementById("L" + hit.line);
      if (!line) {
        const data = await fetchWindow("from=" + Math.max(0, hit.offset - WINDOW / 2));
        log.replaceChildren(chunk(data));
        line = document.getElementById("L" + hit.line);
      }
      if (!line) return;
      for (const old of log.querySelectorAll(".line.hit")) old.classList.remove("hit");
      line.classList.add("hit");
      mark(line, needle);
      for (let section = line.closest("details"); section; section = section.parentElement.closest("details")) {
        section.open = true;
      }
      line.scrollIntoView({ block: "center" });
    }
  }

  // Wraps each occurrence of `needle` (ASCII case ignored) in the line's text in <mark>.
  function mark(line, needle) {
    const lower = needle.toLowerCase();
    const text = line.querySelector(".t") || line;
    const walker = document.createTreeWalker(text, NodeFilter.SHOW_TEXT);
    const nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    for (let node of nodes) {
      if (node.parentElement.tagName === "MARK") continue;
      let found = node.nodeValue.toLowerCase().indexOf(lower);
      while (found >= 0) {
        const hit = node.splitText(found);
        node = hit.splitText(lower.length);
        const marked = document.createElement("mark");
        hit.replaceWith(marked);
        marked.append(hit);
        found = node.nodeValue.toLowerCase().indexOf(lower);
      }
    }
  }

  livePage();
  jobLog();
})();
