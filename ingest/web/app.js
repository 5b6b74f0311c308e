// pagefleet's web page: everything goes through the HTTP API. The bearer
// token, when the server wants one, lives in this tab's session storage and
// travels in the Authorization header only, never in a URL.

const TOKEN_KEY = "pagefleet-token";
const $ = (id) => document.getElementById(id);

const state = {
  options: null,
  job: null, // the job shown
  follow: null, // AbortController of the followed event stream
  report: null, // result.json of the job shown
  page: 0, // index into report.pages
  imageUrl: null,
};

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function headers(extra = {}) {
  const t = token();
  return t ? { ...extra, Authorization: `Bearer ${t}` } : extra;
}

// An API error, worded as the API words it.
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, init = {}) {
  const response = await fetch(path, { ...init, headers: headers(init.headers) });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body && body.error) message = body.error;
    } catch (_) {
      // Not JSON: the status line says it.
    }
    throw new ApiError(response.status, message);
  }
  return response;
}

const apiJson = async (path, init) => (await api(path, init)).json();

function notice(message) {
  const box = $("notice");
  box.textContent = message || "";
  box.hidden = !message;
}

// Missing or wrong token: say so and open the token box.
function authFailed(error) {
  if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
    notice(`${error.message}. Enter the server's API token above.`);
    $("token-box").open = true;
    $("token").focus();
    return true;
  }
  return false;
}

function report(error) {
  if (!authFailed(error)) notice(error.message);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

function bytes(n) {
  const units = ["bytes", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

// ---- options -------------------------------------------------------------

// What each text-layer mode does, as the choice shows it.
const TEXT_LAYERS = {
  auto: "auto: the PDF's own text where it agrees with the page",
  ocr: "ocr: read every page from its pixels",
  skip: "skip: leave pages with text out",
  use: "use: the PDF's own text, unchecked",
};

// Loads what the server offers; a second load (to see which profiles have
// a worker now) keeps what the person chose.
async function loadOptions() {
  try {
    const options = await apiJson("/v1/options");
    const chosen = state.options && {
      profile: $("profile").value,
      language: $("language").value,
      text_layer: $("text-layer").value,
      dpi: $("dpi").value,
      formats: [...document.querySelectorAll("input[name=format]:checked")].map((b) => b.value),
    };
    state.options = options;
    notice("");
    const profile = $("profile");
    profile.replaceChildren();
    for (const name of options.profiles) {
      const served = options.served_profiles.includes(name);
      // A profile no healthy worker serves is shown, not offered: a job
      // with it would wait for a worker.
      const option = el("option", {
        value: name,
        text: served ? name : `${name} (unavailable: no worker serves it now)`,
      });
      option.disabled = !served;
      if (name === (chosen ? chosen.profile : options.default_profile)) option.selected = true;
      profile.append(option);
    }
    const language = $("language");
    language.replaceChildren(el("option", { value: "auto", text: "auto: each page decides" }));
    for (const lang of options.languages || []) {
      const only = lang.profiles.length === 1 ? ` (${lang.profiles[0]} only)` : "";
      language.append(el("option", { value: lang.code, text: `${lang.name} (${lang.code})${only}` }));
    }
    language.value = chosen ? chosen.language : options.default_language || "auto";
    const textLayer = $("text-layer");
    textLayer.replaceChildren();
    for (const mode of options.text_layers || []) {
      textLayer.append(el("option", { value: mode, text: TEXT_LAYERS[mode] || mode }));
    }
    textLayer.value = chosen ? chosen.text_layer : options.default_text_layer || "auto";
    const dpi = $("dpi");
    dpi.min = options.dpi.min;
    dpi.max = options.dpi.max;
    dpi.value = chosen ? chosen.dpi : options.dpi.default;
    const formats = $("formats");
    formats.querySelectorAll("label").forEach((n) => n.remove());
    for (const format of options.formats) {
      const box = el("input", { type: "checkbox", name: "format", value: format, id: `format-${format}` });
      box.checked = (chosen ? chosen.formats : options.default_formats).includes(format);
      // The JSON result is always written: the page reads it.
      if (format === "json") {
        box.checked = true;
        box.disabled = true;
      }
      formats.append(el("label", { for: `format-${format}` }, box, ` ${format}`));
    }
    $("limits").textContent =
      `${options.allowed_types.map((t) => t.toUpperCase()).join(", ")}; ` +
      `up to ${bytes(options.max_upload_bytes)} and ${options.max_pages} pages each.`;
    return true;
  } catch (error) {
    report(error);
    return false;
  }
}

// ---- submitting -----------------------------------------------------------

async function submitFiles(files) {
  const refusals = $("refusals");
  refusals.replaceChildren();
  if (!files.length) {
    refusals.append(el("li", { class: "error", text: "Pick or drop a file first." }));
    return;
  }
  const formats = [...document.querySelectorAll("input[name=format]:checked")].map((b) => b.value);
  const button = $("submit");
  button.disabled = true;
  let last = null;
  const limit = state.options ? state.options.max_upload_bytes : Infinity;
  for (const file of files) {
    // The server refuses it unread, and a browser often sees only the
    // connection closing mid-upload: say it here, as the API would.
    if (file.size > limit) {
      refusals.append(
        el("li", {
          class: "error",
          text: `${file.name}: the document is ${file.size} bytes, over the limit of ${limit} bytes (max upload size)`,
        }),
      );
      continue;
    }
    const form = new FormData();
    form.append("profile", $("profile").value);
    form.append("language", $("language").value);
    form.append("text_layer", $("text-layer").value);
    form.append("dpi", $("dpi").value);
    form.append("formats", formats.join(","));
    form.append("file", file, file.name);
    try {
      const accepted = await apiJson("/v1/jobs", { method: "POST", body: form });
      last = accepted.job_id;
    } catch (error) {
      if (authFailed(error)) {
        button.disabled = false;
        return;
      }
      refusals.append(el("li", { class: "error", text: `${file.name}: ${error.message}` }));
    }
  }
  button.disabled = false;
  await loadOptions();
  await loadJobs();
  if (last) openJob(last);
}

// ---- the jobs list --------------------------------------------------------

function pagesText(job) {
  const p = job.progress;
  const total = p.total_pages == null ? "?" : p.total_pages;
  return p.pages_failed ? `${p.pages_done} of ${total}, ${p.pages_failed} failed` : `${p.pages_done} of ${total}`;
}

async function loadJobs() {
  try {
    const { jobs } = await apiJson("/v1/jobs?limit=20");
    const body = $("jobs").tBodies[0];
    body.replaceChildren();
    if (!jobs.length) {
      body.append(el("tr", {}, el("td", { colspan: "5", class: "hint", text: "No job yet." })));
    }
    for (const job of jobs) {
      const open = el("button", { type: "button", class: "link", text: "Open" });
      open.setAttribute("aria-label", `Open ${job.filename}`);
      open.addEventListener("click", () => openJob(job.job_id));
      body.append(
        el(
          "tr",
          { "data-job": job.job_id },
          el("td", { text: job.filename }),
          el("td", {}, el("span", { class: `status ${job.status}`, text: job.status.replace("_", " ") })),
          el("td", { text: pagesText(job) }),
          el("td", { text: new Date(job.submitted_at_ms).toLocaleString() }),
          el("td", {}, open),
        ),
      );
    }
  } catch (error) {
    report(error);
  }
}

// ---- one job --------------------------------------------------------------

const FINISHED = ["success", "partial_success", "failed", "cancelled"];

function showProgress(view) {
  const p = view.progress;
  const total = p.total_pages;
  const done = p.pages_done + p.pages_failed;
  const progress = $("job-progress");
  if (total) {
    progress.max = total;
    progress.value = done;
  } else if (FINISHED.includes(view.status)) {
    progress.max = 1;
    progress.value = 1;
  } else {
    progress.removeAttribute("value"); // indeterminate until the page count is known
  }
  const waiting = view.waiting ? ` (${view.waiting})` : "";
  $("job-summary").textContent =
    `${view.filename}: ${view.status.replace("_", " ")}${waiting}; profile ${view.profile}, ` +
    `language ${view.language}; pages read ${pagesText(view)}.`;
  const list = $("page-states");
  if (total && list.children.length !== total) {
    list.replaceChildren();
    for (let n = 1; n <= total; n += 1) {
      list.append(el("li", { class: "waiting", "data-page": String(n), title: `page ${n}: waiting`, text: String(n) }));
    }
  }
  $("cancel").hidden = FINISHED.includes(view.status);
  $("delete").hidden = !FINISHED.includes(view.status);
}

function markPage(page, status, error) {
  const chip = $("page-states").querySelector(`[data-page="${page}"]`);
  if (!chip) return;
  chip.className = status;
  chip.title = error ? `page ${page}: ${status}: ${error}` : `page ${page}: ${status}`;
}

async function openJob(jobId) {
  if (state.follow) state.follow.abort();
  state.follow = null;
  state.report = null;
  $("job").hidden = false;
  $("reader").hidden = true;
  $("downloads").replaceChildren();
  $("page-states").replaceChildren();
  $("job-error").hidden = true;
  $("job-title").textContent = `Job ${jobId}`;
  try {
    const view = await apiJson(`/v1/jobs/${encodeURIComponent(jobId)}`);
    state.job = view;
    showProgress(view);
    // The view names failed pages; the result (a finished job) or the
    // event stream (from its first event) marks the rest.
    for (const p of view.failed_pages || []) markPage(p.page, "failed", p.error);
    $("job").scrollIntoView({ block: "start" });
    if (FINISHED.includes(view.status)) await showResult(view);
    else follow(jobId);
  } catch (error) {
    report(error);
  }
}

// Server-sent events over fetch, so that the bearer header goes along.
async function follow(jobId) {
  const control = new AbortController();
  state.follow = control;
  let completed = false;
  try {
    const response = await api(`/v1/jobs/${encodeURIComponent(jobId)}/events`, {
      signal: control.signal,
      headers: { Accept: "text/event-stream" },
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = frame
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trimStart())
          .join("\n");
        if (!data) continue; // a keep-alive comment
        const event = JSON.parse(data);
        if (state.job && state.job.job_id === jobId) {
          Object.assign(state.job, { status: event.status, waiting: event.waiting });
          state.job.progress = {
            pages_done: event.pages_done,
            pages_failed: event.pages_failed,
            total_pages: event.total_pages,
          };
          showProgress(state.job);
          if (event.page) markPage(event.page, event.page_status);
        }
        if (event.kind === "completed") completed = true;
      }
    }
  } catch (error) {
    if (control.signal.aborted) return;
    report(error);
  }
  if (state.follow !== control) return;
  state.follow = null;
  if (completed) {
    await loadOptions();
    await loadJobs();
    await openJob(jobId);
  } else {
    // The stream broke off (a restart, a proxy): pick it up again.
    setTimeout(() => {
      if (state.job && state.job.job_id === jobId && !state.follow) openJob(jobId);
    }, 2000);
  }
}

function downloadName(view, format) {
  const base = view.filename.replace(/\.[^.]+$/, "") || view.job_id;
  // As the store names them: the format, but alto.xml for ALTO.
  return `${base}.${format === "alto" ? "alto.xml" : format}`;
}

function downloads(view) {
  const box = $("downloads");
  box.replaceChildren("Download: ");
  for (const format of view.formats) {
    const href = `/v1/jobs/${encodeURIComponent(view.job_id)}/result?format=${format}`;
    // The plain link lets an S3 store answer it: the API redirects to a
    // presigned URL of the result (a folder store's bytes come as before).
    const link = el("a", { href: `${href}&redirect=true`, download: downloadName(view, format), class: "download", "data-format": format, text: format });
    // With a token the plain link would be refused: fetch it with the header,
    // through the API (a redirect to the store would need the store's CORS).
    link.addEventListener("click", async (event) => {
      if (!token()) return;
      event.preventDefault();
      try {
        const blob = await (await api(href)).blob();
        const url = URL.createObjectURL(blob);
        const save = el("a", { href: url, download: link.getAttribute("download") });
        document.body.append(save);
        save.click();
        save.remove();
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      } catch (error) {
        report(error);
      }
    });
    box.append(link, " ");
  }
}

async function showResult(view) {
  if (view.error) {
    $("job-error").textContent = view.error;
    $("job-error").hidden = false;
  }
  if (view.status === "cancelled") return;
  downloads(view);
  try {
    state.report = await apiJson(`/v1/jobs/${encodeURIComponent(view.job_id)}/result?format=json`);
  } catch (error) {
    report(error);
    return;
  }
  const pages = state.report.pages || [];
  for (const p of pages) markPage(p.page, p.status, p.error);
  if (!pages.length) return;
  const pick = $("page-pick");
  pick.replaceChildren();
  pages.forEach((p, i) => pick.append(el("option", { value: String(i), text: `${p.page} of ${pages.length}${p.status === "ok" ? "" : " (failed)"}` })));
  $("reader").hidden = false;
  showPage(0);
}

// Green for confident lines, through yellow, to red for doubtful ones.
function confidenceColour(c) {
  const hue = Math.max(0, Math.min(1, (c - 0.5) / 0.5)) * 120;
  return `hsl(${hue}, 85%, 38%)`;
}

async function showPage(index) {
  const pages = state.report.pages;
  index = Math.max(0, Math.min(pages.length - 1, index));
  state.page = index;
  const page = pages[index];
  $("page-pick").value = String(index);
  $("prev").disabled = index === 0;
  $("next").disabled = index === pages.length - 1;

  const text = $("page-text");
  text.replaceChildren();
  const overlay = $("overlay");
  overlay.replaceChildren();
  const svg = "http://www.w3.org/2000/svg";
  if (page.status !== "ok") {
    text.append(el("p", { class: "error", text: `Page ${page.page} failed: ${page.error || "no reason given"}` }));
  } else {
    overlay.setAttribute("viewBox", `0 0 ${page.width} ${page.height}`);
    let block = null;
    let paragraph = null;
    page.lines.forEach((line, i) => {
      if (line.block !== block || !paragraph) {
        block = line.block;
        paragraph = el(line.block_kind === "heading" ? "h3" : "p", { class: `block ${line.block_kind}` });
        text.append(paragraph);
      } else {
        paragraph.append(document.createElement("br"));
      }
      const span = el("span", { class: "line", "data-line": String(i), text: line.text });
      span.title = `confidence ${(line.confidence * 100).toFixed(0)}%`;
      paragraph.append(span);
      const shape = document.createElementNS(svg, "polygon");
      shape.setAttribute("points", line.polygon.map(([x, y]) => `${x},${y}`).join(" "));
      shape.setAttribute("stroke", confidenceColour(line.confidence));
      shape.setAttribute("data-line", String(i));
      const title = document.createElementNS(svg, "title");
      title.textContent = `${line.text} (${(line.confidence * 100).toFixed(0)}%)`;
      shape.append(title);
      overlay.append(shape);
      const light = (on) => shape.classList.toggle("lit", on);
      span.addEventListener("mouseenter", () => light(true));
      span.addEventListener("mouseleave", () => light(false));
    });
    if (!page.lines.length) text.append(el("p", { class: "hint", text: "No text was found on this page." }));
  }

  const image = $("page-image");
  image.alt = `Page ${page.page} of ${state.job.filename}`;
  $("image-note").textContent = "";
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = null;
  image.removeAttribute("src");
  try {
    const blob = await (await api(`/v1/jobs/${encodeURIComponent(state.job.job_id)}/pages/${page.page}/image`)).blob();
    if (state.page !== index) return;
    state.imageUrl = URL.createObjectURL(blob);
    image.src = state.imageUrl;
  } catch (error) {
    $("image-note").textContent = error.message;
  }
}

// ---- wiring ---------------------------------------------------------------

function wire() {
  $("token").value = token();
  $("token-box").open = !!token();
  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = $("token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    if (await loadOptions()) await loadJobs();
  });
  $("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
  });

  $("upload-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitFiles([...$("files").files]);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    submitFiles([...event.dataTransfer.files]);
  });

  $("refresh").addEventListener("click", async () => {
    await loadOptions();
    await loadJobs();
  });
  $("cancel").addEventListener("click", async () => {
    if (!state.job) return;
    try {
      await api(`/v1/jobs/${encodeURIComponent(state.job.job_id)}`, { method: "DELETE" });
    } catch (error) {
      report(error);
    }
    await loadJobs();
    await openJob(state.job.job_id);
  });
  $("delete").addEventListener("click", async () => {
    if (!state.job) return;
    const id = state.job.job_id;
    if (!window.confirm(`Delete job ${id}, its results and its page images? This cannot be undone.`)) return;
    try {
      await api(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
      state.job = null;
      $("job").hidden = true;
    } catch (error) {
      report(error);
    }
    await loadJobs();
  });
  $("prev").addEventListener("click", () => showPage(state.page - 1));
  $("next").addEventListener("click", () => showPage(state.page + 1));
  $("page-pick").addEventListener("change", (event) => showPage(Number(event.target.value)));
  $("page-text").addEventListener("keydown", (event) => {
    if (!state.report) return;
    if (event.key === "PageDown" && event.altKey) showPage(state.page + 1);
    if (event.key === "PageUp" && event.altKey) showPage(state.page - 1);
  });
}

wire();
if (await loadOptions()) await loadJobs();
// Which profiles have a worker changes as workers come and go.
setInterval(() => {
  if (state.options && !document.hidden) loadOptions();
}, 30000);
