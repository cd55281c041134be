"""FastAPI + scikit-learn peer of the assistant's HTTP server (`cargo xtask serve`):
the same kind of model behind the same JSON shapes, so that one load generator
can measure both.

    python3 benches/peers/fastapi_intent_server.py --port 8090 --db /tmp/x.db [--workers 1]

Prints `listening on http://127.0.0.1:PORT` once it accepts connections.
Installed and measured with (Python 3.11.7):
    fastapi==0.165.0 uvicorn[standard]==0.55.0 (uvloop==0.23.0, httptools==0.9.0)
    starlette==1.10.0 pydantic==2.14.4 scikit-learn==1.9.1 numpy==2.4.6 scipy==1.17.1

API (the subset of the Rust server's `/v1`, same bodies and error shape
`{"error": {"code", "message", "field"}}`; unknown request fields are a 400):
- `POST /v1/predict` `{"text": 1..2000 chars, "session": optional, <= 100 chars}` ->
  `{interaction_id, text, intent, confidence, top: [{intent, q}] x5, clarify, model_version}`.
  `q` is the classifier's `decision_function` score and `confidence` the best
  minus the second-best score. `clarify` is always null unless `--clarify-margin`
  is given (then it is the Rust server's question when confidence < margin; the
  hinge-loss scores are roughly on the Q-value scale, about -1..+1).
- `POST /v1/feedback` `{"interaction_id", "feedback": right|wrong|corrected,
  "intent": only for corrected}` -> `{feedback_id, interaction_id, feedback, answered,
  corrected_intent, lessons, model_version}`; 404 unknown interaction, 409 when it
  already has feedback, 400 for an unknown corrected intent. A correction naming
  the answer given is recorded as `right` (as in Rust). No `/v1/undo`, no auth
  token, no 64 KiB body limit.
- `GET /healthz` -> `{"status": "ok", "model_version"}`.

Model: trained at start-up on `crates/rlhf-assistant/data/intents/*.tsv`, the
*train* split of `IntentCorpus::builtin(Split::Train)`: in each (intent,
language) group, in the Rust file order, every fifth phrasing (indices 4, 9, ...)
is held out. Each train phrasing is rendered 10 times with seeded slot values
from `slots.tsv`; the held-out phrasings (5 renders each) give the test accuracy
printed at start-up. Features: `HashingVectorizer(analyzer="char_wb",
ngram_range=(1, 3), n_features=2**16, alternate_sign=False)`; classifier:
`SGDClassifier(loss="hinge")`, one-vs-rest over the 24 intents. Scores are
`decision_function` on the published snapshot, whose `coef_` is stored
column-major (otherwise scipy copies the 24 x 65536 weights on every call, ~3 ms).

Learning: in a background learner thread, never in the request (as in Rust:
answers never wait for learning). `right` and `corrected` are labelled examples
(the answer, or the named intent) applied with `partial_fit`; `wrong` has no
label to fit and is recorded only (its lesson, -1 for the answer, is reported
but not learned). The learner drains every committed event, fits them in one
`partial_fit`, then publishes a copy of the classifier as the snapshot that
answers (`model_version` = id of the last event applied; the feedback response's
`model_version` is the version that will include it). Feedback already in the
`--db` when the server starts is replayed, in order, before it listens.

Store: SQLite at `--db` (default: a new temporary file), WAL, synchronous=NORMAL,
busy_timeout 5 s. One writer thread owns the writes, in arrival order: it takes
whatever is queued (up to 512 operations), writes it in one transaction (BEGIN
IMMEDIATE ... COMMIT, i.e. group commit), and only then answers the feedback
requests of that burst. Interactions are queued and not waited for: a predict
answers before its row is committed (normally within milliseconds, in the next
burst); a crash can lose the last uncommitted interactions, never acknowledged
feedback. A feedback for an interaction still in the queue is fine: the queue is
in order. This is the Rust server's writer design.

Serving: uvicorn, one process by default (the Rust server is one process). The
handlers are `async def` and score on the event loop (a few hundred
microseconds); the writer and the learner are threads. `--workers N` forks N
processes after training, sharing one listening socket: each has its own model,
writer and learner (so each learns only from the feedback it receives), interaction
ids are interleaved (worker i hands out i, i+N, ...), feedback ids come from
SQLite. With N > 1 a feedback routed to another worker than its predict can get
a 404 if sent before that interaction's row is committed.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import hashlib
import json
import os
import queue
import random
import re
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from pydantic import BaseModel, ConfigDict  # noqa: E402
from sklearn.feature_extraction.text import HashingVectorizer  # noqa: E402
from sklearn.linear_model import SGDClassifier  # noqa: E402
from starlette.exceptions import HTTPException as StarletteHTTPException  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "crates" / "rlhf-assistant" / "data" / "intents"
# `BUILTIN_TEMPLATES` of corpus.rs, in its order (the split counts within a group in this order).
TEMPLATE_FILES = (
    "smart_home_devices.tsv",
    "smart_home_climate.tsv",
    "phone.tsv",
    "navigation.tsv",
    "media.tsv",
    "info.tsv",
)
TEST_EVERY = 5
TRAIN_RENDERS = 10
TEST_RENDERS = 5
SEED = 7
MAX_TEXT_CHARS = 2_000
MAX_SESSION_CHARS = 100
BURST = 512

# How the Rust assistant names the built-in intents when it asks (corpus.rs INTENT_DESCRIPTIONS).
DESCRIPTIONS = {
    "light_on": ("开灯", "turn the lights on"),
    "light_off": ("关灯", "turn the lights off"),
    "volume_up": ("调大音量", "turn the volume up"),
    "volume_down": ("调小音量", "turn the volume down"),
    "ac_on": ("开空调", "turn the air conditioning on"),
    "ac_off": ("关空调", "turn the air conditioning off"),
    "temperature_up": ("调高温度", "make it warmer"),
    "temperature_down": ("调低温度", "make it cooler"),
    "curtain_open": ("打开窗帘", "open the curtains"),
    "curtain_close": ("拉上窗帘", "close the curtains"),
    "call_contact": ("打电话", "make a call"),
    "send_message": ("发消息", "send a message"),
    "set_alarm": ("设闹钟", "set an alarm"),
    "cancel_alarm": ("取消闹钟", "cancel an alarm"),
    "navigate_to": ("导航", "get directions"),
    "find_parking": ("找停车位", "find parking"),
    "query_traffic": ("查路况", "check the traffic"),
    "play_music": ("放音乐", "play music"),
    "pause_music": ("暂停音乐", "pause the music"),
    "next_track": ("下一首", "skip to the next song"),
    "query_weather": ("查天气", "check the weather"),
    "query_time": ("查时间", "tell the time"),
    "web_search": ("搜索", "search the web"),
    "translate": ("翻译", "translate something"),
}
CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


# ---------------------------------------------------------------- corpus and model


def tsv_rows(path: Path):
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 3 or any(not f.strip() for f in fields):
            raise SystemExit(f"{path.name}:{number}: expected 3 non-empty tab-separated fields")
        yield fields


def load_corpus():
    """(train, test) lists of (template, language, intent), split as `IntentCorpus::builtin` does."""
    slots: dict[tuple[str, str], list[str]] = {}
    for slot, language, value in tsv_rows(DATA / "slots.tsv"):
        slots.setdefault((slot, language), []).append(value)
    seen: dict[tuple[str, str], int] = {}
    train, test = [], []
    for name in TEMPLATE_FILES:
        for intent, language, template in tsv_rows(DATA / name):
            index = seen.get((intent, language), 0)
            seen[(intent, language)] = index + 1
            (test if index % TEST_EVERY == TEST_EVERY - 1 else train).append((template, language, intent))
    return slots, train, test


def render(rows, renders, slots, rng):
    texts, labels = [], []
    for template, language, intent in rows:
        copies = renders if "{" in template else 1
        for _ in range(copies):
            texts.append(re.sub(r"\{([^{}]+)\}", lambda m: rng.choice(slots[(m.group(1), language)]), template))
            labels.append(intent)
    return texts, labels


def make_vectorizer():
    return HashingVectorizer(analyzer="char_wb", ngram_range=(1, 3), n_features=2**16, alternate_sign=False)


def train_model(vectorizer):
    slots, train_rows, test_rows = load_corpus()
    rng = random.Random(SEED)
    texts, labels = render(train_rows, TRAIN_RENDERS, slots, rng)
    test_texts, test_labels = render(test_rows, TEST_RENDERS, slots, rng)
    started = time.perf_counter()
    clf = SGDClassifier(loss="hinge", alpha=1e-5, max_iter=100, tol=1e-3, random_state=0)
    clf.fit(vectorizer.transform(texts), labels)
    seconds = time.perf_counter() - started
    accuracy = float(np.mean(clf.predict(vectorizer.transform(test_texts)) == np.array(test_labels)))
    print(
        f"trained on {len(texts)} utterances ({len(train_rows)} train phrasings x<= {TRAIN_RENDERS}) in {seconds:.1f} s; "
        f"{len(clf.classes_)} intents; held-out phrasings accuracy {accuracy:.3f} ({len(test_texts)} utterances)",
        flush=True,
    )
    return clf


@dataclass(frozen=True)
class Snapshot:
    """The model answering now: never mutated once published."""

    version: int
    clf: SGDClassifier
    labels: tuple


# ---------------------------------------------------------------- errors


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: Optional[str] = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def response(self) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message, "field": self.field}}
        return JSONResponse(body, status_code=self.status)


def bad_field(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_field", message, field)


# ---------------------------------------------------------------- store


SCHEMA = """
CREATE TABLE IF NOT EXISTS interactions (
    id INTEGER PRIMARY KEY,
    session TEXT,
    text TEXT NOT NULL,
    features_hash TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    intent TEXT NOT NULL,
    confidence REAL NOT NULL,
    q_values TEXT NOT NULL,
    unix_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    interaction_id INTEGER,
    feedback TEXT,
    corrected_intent TEXT,
    undone INTEGER NOT NULL DEFAULT 0,
    unix_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_interaction ON events (interaction_id);
"""


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def init_store(path: str):
    """Creates the schema; returns (max interaction id, committed feedback to replay, last event id)."""
    conn = connect(path)
    conn.executescript(SCHEMA)
    max_interaction = conn.execute("SELECT COALESCE(MAX(id), 0) FROM interactions").fetchone()[0]
    replay = conn.execute(
        "SELECT e.id, e.feedback, e.corrected_intent, i.text, i.intent FROM events e "
        "JOIN interactions i ON i.id = e.interaction_id WHERE e.kind = 'feedback' AND e.undone = 0 ORDER BY e.id"
    ).fetchall()
    last_event = conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
    conn.close()
    return max_interaction, replay, last_event


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Writer(threading.Thread):
    """The store's one writer: bursts of queued operations, one transaction each."""

    def __init__(self, path: str, labels: tuple, learner: "Learner"):
        super().__init__(name="writer", daemon=True)
        self.conn = connect(path)
        self.labels = labels
        self.learner = learner
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()

    # From the event loop: ("interaction", row) or ("feedback", request, loop, future).
    def put(self, op):
        self.inbox.put(op)

    def run(self):
        while True:
            burst = [self.inbox.get()]
            while len(burst) < BURST:
                try:
                    burst.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            self.write(burst)

    def write(self, burst):
        answers, events = [], []
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            rows = []
            for op in burst:
                if op[0] == "interaction":
                    rows.append(op[1])
                    continue
                if rows:  # keep arrival order: a feedback sees every interaction queued before it
                    self.conn.executemany("INSERT INTO interactions VALUES (?,?,?,?,?,?,?,?,?)", rows)
                    rows = []
                _, request, loop, future = op
                answers.append((loop, future, self.feedback(request, events)))
            if rows:
                self.conn.executemany("INSERT INTO interactions VALUES (?,?,?,?,?,?,?,?,?)", rows)
            self.conn.execute("COMMIT")
        except sqlite3.Error as e:
            print(f"store error: {e}", file=sys.stderr, flush=True)
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            failed = ApiError(503, "store_unavailable", f"the feedback was not stored: {e}")
            answers = [(op[2], op[3], failed) for op in burst if op[0] == "feedback"]
            events = []
        for event in events:
            self.learner.inbox.put(event)
        for loop, future, result in answers:
            loop.call_soon_threadsafe(_resolve, future, result)

    def feedback(self, request: "FeedbackRequest", events: list):
        iid = request.interaction_id
        found = self.conn.execute("SELECT text, intent FROM interactions WHERE id = ?", (iid,)).fetchone()
        if found is None:
            return ApiError(404, "not_found", f"no interaction {iid}", "interaction_id")
        text, answered = found
        given = self.conn.execute(
            "SELECT id, feedback FROM events WHERE interaction_id = ? AND kind = 'feedback' AND undone = 0", (iid,)
        ).fetchone()
        if given is not None:
            message = f"interaction {iid} already has feedback `{given[1]}` (event {given[0]}); undo it first"
            return ApiError(409, "conflict", message)
        kind, corrected = request.feedback, request.intent
        if kind == "corrected" and corrected == answered:
            kind = "right"  # naming the answer given is confirming it
        if kind == "corrected" and corrected not in self.labels:
            return bad_field("intent", f"`{corrected}` is not one of the model's labels")
        corrected = corrected if kind == "corrected" else None
        cursor = self.conn.execute(
            "INSERT INTO events (kind, interaction_id, feedback, corrected_intent, unix_ms) VALUES ('feedback',?,?,?,?)",
            (iid, kind, corrected, now_ms()),
        )
        event_id = cursor.lastrowid
        if kind == "right":
            lessons, label = [{"intent": answered, "reward": 1.0}], answered
        elif kind == "wrong":
            lessons, label = [{"intent": answered, "reward": -1.0}], None
        else:
            lessons, label = [{"intent": answered, "reward": -1.0}, {"intent": corrected, "reward": 1.0}], corrected
        events.append((event_id, text, label))
        return {
            "feedback_id": event_id,
            "interaction_id": iid,
            "feedback": kind,
            "answered": answered,
            "corrected_intent": corrected,
            "lessons": lessons,
            "model_version": event_id,
        }


def _resolve(future: asyncio.Future, result):
    if not future.done():
        future.set_result(result)


class Learner(threading.Thread):
    """Applies committed feedback with `partial_fit` and publishes snapshots."""

    def __init__(self, state: "State", clf: SGDClassifier, vectorizer, version: int):
        super().__init__(name="learner", daemon=True)
        self.state, self.clf, self.vectorizer, self.version = state, clf, vectorizer, version
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()

    def apply(self, events):
        labelled = [(text, label) for _, text, label in events if label is not None]
        if labelled:
            self.clf.partial_fit(self.vectorizer.transform([t for t, _ in labelled]), [lab for _, lab in labelled])
        self.version = max(self.version, events[-1][0])

    def publish(self):
        # A copy the learner never touches again. Its weights are stored column-major so that
        # `decision_function`'s `X @ coef_.T` reads a C-contiguous matrix: with the row-major
        # `coef_` that SGD leaves, scipy copies all 24 x 65536 weights on every call (~3 ms).
        clf = copy.copy(self.clf)
        clf.coef_ = np.asfortranarray(self.clf.coef_)  # a new array (the order differs)
        clf.intercept_ = self.clf.intercept_.copy()
        self.state.snapshot = Snapshot(self.version, clf, tuple(clf.classes_.tolist()))

    def run(self):
        while True:
            events = [self.inbox.get()]
            while True:
                try:
                    events.append(self.inbox.get_nowait())
                except queue.Empty:
                    break
            self.apply(events)
            self.publish()


# ---------------------------------------------------------------- HTTP


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: str
    session: Optional[str] = None


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    interaction_id: int
    feedback: Literal["right", "wrong", "corrected"]
    intent: Optional[str] = None


class State:
    snapshot: Snapshot
    writer: Writer
    vectorizer: HashingVectorizer
    next_id: int = 1
    id_step: int = 1
    clarify_margin: float = 0.0


state = State()
app = FastAPI(title="rlhf assistant peer (FastAPI + scikit-learn)", docs_url=None, redoc_url=None)


@app.exception_handler(ApiError)
async def api_error(_request: Request, exc: ApiError):
    return exc.response()


@app.exception_handler(RequestValidationError)
async def invalid_request(_request: Request, exc: RequestValidationError):
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [part for part in first.get("loc", ()) if part != "body"]
    field = loc[0] if loc and isinstance(loc[0], str) and first.get("type") != "json_invalid" else None
    message = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}" for e in errors)
    return ApiError(400, "invalid_request", message or "invalid request", field).response()


@app.exception_handler(StarletteHTTPException)
async def http_error(_request: Request, exc: StarletteHTTPException):
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return ApiError(exc.status_code, code, str(exc.detail)).response()


def clarification(first: str, second: str, text: str):
    zh = bool(CJK.search(text))

    def say(label):
        return DESCRIPTIONS.get(label, (label, label))[0 if zh else 1]

    prompt = (
        f"您是想{say(first)}还是{say(second)}？请再说一遍。"
        if zh
        else f"Did you mean {say(first)} or {say(second)}? Please say it again."
    )
    return {"options": [first, second], "prompt": prompt}


@app.post("/v1/predict")
async def predict(request: PredictRequest):
    text = request.text
    if not text.strip():
        raise bad_field("text", "is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise bad_field("text", f"has {len(text)} characters, more than {MAX_TEXT_CHARS}")
    if request.session is not None and len(request.session) > MAX_SESSION_CHARS:
        raise bad_field("session", f"is longer than {MAX_SESSION_CHARS} characters")
    snap = state.snapshot
    features = state.vectorizer.transform([text])
    q = snap.clf.decision_function(features)[0]
    order = np.argsort(-q, kind="stable")
    best = int(order[0])
    confidence = float(q[best] - q[order[1]]) if len(order) > 1 else 0.0
    intent = snap.labels[best]
    clarify = None
    if confidence < state.clarify_margin and len(order) > 1:
        clarify = clarification(intent, snap.labels[int(order[1])], text)
    top = [{"intent": snap.labels[i], "q": float(q[i])} for i in order[:5].tolist()]
    interaction_id = state.next_id
    state.next_id += state.id_step
    fingerprint = hashlib.blake2b(features.indices.tobytes() + features.data.tobytes(), digest_size=8).hexdigest()
    state.writer.put(
        (
            "interaction",
            (
                interaction_id,
                request.session,
                text,
                fingerprint,
                snap.version,
                intent,
                confidence,
                json.dumps(q.tolist()),
                now_ms(),
            ),
        )
    )
    return JSONResponse(
        {
            "interaction_id": interaction_id,
            "text": text,
            "intent": intent,
            "confidence": confidence,
            "top": top,
            "clarify": clarify,
            "model_version": snap.version,
        }
    )


@app.post("/v1/feedback")
async def feedback(request: FeedbackRequest):
    if request.feedback == "corrected" and request.intent is None:
        raise bad_field("intent", "a correction names the right intent")
    if request.feedback != "corrected" and request.intent is not None:
        raise bad_field("intent", "only a correction names an intent")
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    state.writer.put(("feedback", request, loop, future))
    result = await future  # answered once its burst is committed
    if isinstance(result, ApiError):
        raise result
    return JSONResponse(result)


@app.get("/healthz")
async def healthz():
    return JSONResponse({"status": "ok", "model_version": state.snapshot.version})


# ---------------------------------------------------------------- process


class Server(uvicorn.Server):
    """Calls `on_ready` once the socket accepts connections."""

    on_ready = None

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if self.on_ready is not None and not self.should_exit:
            self.on_ready()


def serve(args, sock, clf, vectorizer, replay_version, max_interaction, worker, workers, on_ready):
    """Runs one serving process: its learner, writer and uvicorn on `sock`."""
    state.vectorizer = vectorizer
    state.clarify_margin = args.clarify_margin
    state.id_step = workers
    # The first id > max_interaction that is worker (mod workers), counting from 1.
    first = max_interaction + 1
    state.next_id = first + ((worker + 1 - first) % workers)
    learner = Learner(state, clf, vectorizer, replay_version)
    learner.publish()
    state.writer = Writer(args.db, state.snapshot.labels, learner)
    learner.start()
    state.writer.start()
    config = uvicorn.Config(
        app, loop="auto", http="auto", lifespan="off", access_log=False, log_level="warning", workers=None
    )
    server = Server(config)
    server.on_ready = on_ready
    server.run(sockets=[sock])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--db", default=None, help="SQLite file (default: a new temporary file)")
    parser.add_argument("--workers", type=int, default=1, help="serving processes (default 1, as the Rust server)")
    parser.add_argument(
        "--clarify-margin", type=float, default=0.0, help="ask back below this confidence (default 0: never)"
    )
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.db is None:
        args.db = os.path.join(tempfile.mkdtemp(prefix="fastapi-intent-"), "feedback.db")
    print(f"store: {args.db}", flush=True)

    vectorizer = make_vectorizer()
    clf = train_model(vectorizer)
    max_interaction, replay, last_event = init_store(args.db)
    if replay:
        learner = Learner(State(), clf, vectorizer, 0)
        events = []
        for event_id, kind, corrected, text, answered in replay:
            label = answered if kind == "right" else corrected if kind == "corrected" else None
            events.append((event_id, text, label))
        learner.apply(events)
        print(f"replayed {len(replay)} feedback events from the store", flush=True)

    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    ready_line = f"listening on http://{args.host}:{port}"

    if args.workers == 1:
        serve(args, sock, clf, vectorizer, last_event, max_interaction, 0, 1, lambda: print(ready_line, flush=True))
        return

    read_end, write_end = os.pipe()
    children = []
    for worker in range(args.workers):
        pid = os.fork()
        if pid == 0:
            os.close(read_end)

            def ready(fd=write_end):
                os.write(fd, b"r")

            try:
                serve(args, sock, clf, vectorizer, last_event, max_interaction, worker, args.workers, ready)
            finally:
                os._exit(0)
        children.append(pid)
    os.close(write_end)
    got = 0
    while got < args.workers:
        chunk = os.read(read_end, args.workers - got)
        if not chunk:
            sys.exit("a worker exited before it was ready")
        got += len(chunk)
    print(f"{ready_line} ({args.workers} worker processes)", flush=True)

    def forward(signum, _frame):
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for pid in children:
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break


if __name__ == "__main__":
    main()
