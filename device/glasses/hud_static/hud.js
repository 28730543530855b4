// Draws the session's screen; every change arrives over Server-Sent Events from /events.
const $ = (id) => document.getElementById(id);
let screen = null;

function show(id, visible) { $(id).hidden = !visible; }

function render(s) {
  screen = s;
  const d = $("display");
  d.dataset.view = s.view;
  d.dataset.seq = s.seq;
  $("unread").textContent = s.unread ? `${s.unread} unread` : "";
  $("connection").textContent = s.connection || "";  // a source that is not working says so: never a silent gap
  show("card", s.view === "card" && !!s.card);
  show("thread", (s.view === "thread" || s.view === "sent") && !!s.thread);
  show("confirm", s.view === "confirm" && !!s.confirm);
  show("answer", s.view === "answer" && !!s.answer);
  show("idle", s.view === "idle");
  if (s.card) {
    $("card-sender").textContent = s.card.sender;
    $("card-thread").textContent = s.card.thread === s.card.sender ? "" : ` · ${s.card.thread}`;
    $("card-summary").textContent = s.card.summary;
  }
  if (s.thread) {
    $("thread-name").textContent = s.thread.name;
    $("thread-summary").textContent = s.thread.summary || "";
    const ol = $("messages");
    ol.replaceChildren(...s.thread.messages.slice(-3).map((m) => {
      const li = document.createElement("li");
      li.textContent = `${m.sender}: ${m.text}`;
      return li;
    }));
  }
  const chips = $("chips");
  chips.replaceChildren(...s.chips.map((c, i) => {
    const li = document.createElement("li");
    li.textContent = `${i + 1}. ${c}`;
    li.className = i === s.chip ? "chip selected" : "chip";
    return li;
  }));
  if (s.answer) {
    $("answer-question").textContent = `“${s.answer.question}”`;
    $("answer-text").textContent = s.answer.text;
    $("answer-text").className = s.answer.abstained ? "abstained" : "";
    $("answer-cited").replaceChildren(...s.answer.cited.map((m) => {
      const li = document.createElement("li");
      li.textContent = `${m.sender} · ${m.thread}: ${m.text}`;
      return li;
    }));
  }
  if (s.confirm) {
    $("confirm-thread").textContent = s.confirm.thread;
    $("confirm-text").textContent = s.confirm.text;
  }
  $("dictation").textContent = s.dictation ? `“${s.dictation}”` : "";
  show("dictation", !!s.dictation);
  $("busy").textContent = s.busy || "";
  show("busy", !!s.busy);
  $("toast").textContent = s.toast || "";
  show("toast", !!s.toast);
  if (s.say) $("spoken").textContent = `says: “${s.say}”`;
}

async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                body: JSON.stringify(body) });
  if (r.status === 401) { notPaired(); return; }
  const data = await r.json();
  if (!r.ok) $("status").textContent = data.error || `error ${r.status}`;
}

function notPaired() {
  $("status").textContent = "not paired: open the pairing link again (glassmate hud --pair)";
}

const KEYS = { ArrowLeft: "left", ArrowRight: "right", Enter: "enter", Escape: "esc" };
document.addEventListener("keydown", (e) => {
  if (e.target === $("say")) return;
  const key = KEYS[e.key];
  if (key) { e.preventDefault(); post("/key", { key }); }
});
$("say-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const utterance = $("say").value.trim();
  if (utterance) post("/say", { utterance });
  $("say").value = "";
  $("say").blur();
});

function connect() {
  const es = new EventSource("/events");
  es.onopen = () => { $("status").textContent = "connected"; };
  es.onmessage = (e) => render(JSON.parse(e.data));
  es.onerror = async () => {
    $("status").textContent = "reconnecting…";
    if (es.readyState !== EventSource.CLOSED) return;  // the browser retries by itself
    const r = await fetch("/screen");  // closed for good: revoked pairing, or the server refused the stream
    if (r.status === 401) notPaired();
    else setTimeout(connect, 3000);
  };
}
setInterval(() => { $("clock").textContent = new Date().toTimeString().slice(0, 5); }, 1000);
connect();
