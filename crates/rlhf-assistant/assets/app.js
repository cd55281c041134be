// Teaching page for the rlhf assistant.
//
// Plain browser JavaScript, no framework and no build step: the file is
// embedded in the server binary and must work under a strict
// Content-Security-Policy (default-src 'self'). Therefore:
//   * no inline scripts/handlers, no eval, no innerHTML with data: every piece
//     of user or server text goes in through textContent / setAttribute;
//   * no element.style: looks come from classes in style.css, the plot and the
//     bars are SVG whose geometry is set through attributes.
'use strict';

(function () {
  const REFRESH_MS = 5000;       // stats + history polling period
  const HISTORY_LIMIT = 20;      // rows in the history table
  const PLOT_WINDOW = 20;        // rolling-accuracy window (answers)
  const CONFIDENCE_MAX = 2;      // confidence is a Q margin: 0 = coin toss, 2 = certain
  const TOKEN_KEY = 'rlhf-assistant.token';
  const SESSION_KEY = 'rlhf-assistant.session';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);

  const state = {
    current: null,        // last answer: {id, text, intent, top, feedback, correctedIntent}
    feedbackStack: [],    // feedback given from this page, newest last (for undo)
    intents: [],          // [{name, description, added}] from GET /v1/intents
    asking: false,        // a predict request is in flight
    busy: false,          // a feedback/undo request is in flight
    matches: [],          // intent names shown in the correction list
    activeOption: 0,      // highlighted entry of the correction list
    refreshFailing: false,
    statusFromRefresh: false,
    lastStatsKey: '',
    lastHistoryKey: '',
    qa: null,             // last answer to a question: {id, answered, feedback}
    qaBusy: false,        // a question or its feedback is in flight
  };

  // ---------------------------------------------------------------- storage

  // sessionStorage can throw (privacy modes, sandboxed frames); the page must
  // keep working, so fall back to memory.
  const memoryStore = new Map();

  function storageGet(key) {
    try {
      const value = window.sessionStorage.getItem(key);
      if (value !== null) return value;
    } catch (_) { /* fall through to memory */ }
    return memoryStore.has(key) ? memoryStore.get(key) : null;
  }

  function storageSet(key, value) {
    memoryStore.set(key, value);
    try { window.sessionStorage.setItem(key, value); } catch (_) { /* memory only */ }
  }

  function storageRemove(key) {
    memoryStore.delete(key);
    try { window.sessionStorage.removeItem(key); } catch (_) { /* memory only */ }
  }

  // One id per tab: sessionStorage is per tab, so a reload keeps the id and
  // a new tab gets a new one.
  function makeSessionId() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === 'function') {
      try { return c.randomUUID(); } catch (_) { /* insecure context: use bytes */ }
    }
    const bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === 'function') {
      c.getRandomValues(bytes);
    } else {
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    }
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function sessionId() {
    let id = storageGet(SESSION_KEY);
    if (!id) {
      id = makeSessionId();
      storageSet(SESSION_KEY, id);
    }
    return id;
  }

  // ---------------------------------------------------------------- DOM helpers

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setAttrs(node, attrs) {
    if (!attrs) return;
    for (const [name, value] of Object.entries(attrs)) {
      if (value !== undefined && value !== null) node.setAttribute(name, String(value));
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // Han characters look different in zh/ja fonts; tagging user text with a
  // language lets the browser pick a matching system font.
  function applyLang(node, text) {
    const s = String(text || '');
    if (/[\u3040-\u30ff]/.test(s)) node.setAttribute('lang', 'ja');
    else if (/[\uac00-\ud7af]/.test(s)) node.setAttribute('lang', 'ko');
    else if (/[\u3400-\u9fff\uf900-\ufaff]/.test(s)) node.setAttribute('lang', 'zh');
    else node.removeAttribute('lang');
  }

  function isNumber(x) {
    return typeof x === 'number' && Number.isFinite(x);
  }

  function clamp(x, lo, hi) {
    return Math.min(hi, Math.max(lo, x));
  }

  function fixed2(x) {
    return isNumber(x) ? x.toFixed(2) : '–';
  }

  function percent(x) {
    return isNumber(x) ? (x * 100).toFixed(1) + '%' : '–';
  }

  function count(x) {
    return isNumber(x) ? String(x) : '–';
  }

  // Text fields swallow the single-key shortcuts; buttons and the answer
  // panel do not.
  function isTextField(node) {
    if (!node || !node.tagName) return false;
    if (node.isContentEditable) return true;
    const tag = node.tagName;
    if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
    if (tag !== 'INPUT') return false;
    const nonText = ['button', 'submit', 'reset', 'checkbox', 'radio', 'range', 'color', 'file', 'image'];
    return !nonText.includes((node.getAttribute('type') || 'text').toLowerCase());
  }

  // ---------------------------------------------------------------- status line

  function setStatus(message, kind) {
    const status = $('status');
    status.textContent = message;
    status.className = kind ? 'status-' + kind : '';
    state.statusFromRefresh = false;
  }

  function reportError(what, err) {
    let message = what + ': ' + (err && err.message ? err.message : String(err));
    if (err && err.status === 401) {
      if (!/[.!?。！？]$/.test(message)) message += '.';
      message += ' Enter the access token below.';
    }
    setStatus(message, 'error');
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field;
    }
  }

  function getToken() {
    return storageGet(TOKEN_KEY);
  }

  async function readJson(response) {
    try {
      const text = await response.text();
      return text ? JSON.parse(text) : null;
    } catch (_) {
      return null;  // not JSON (e.g. a proxy error page): the caller uses the HTTP status
    }
  }

  // Every call goes through here so errors look the same everywhere: the
  // server's error.message when there is one, else the HTTP status, else a
  // network message.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (method !== 'GET') {
      const token = getToken();
      if (token) headers.Authorization = 'Bearer ' + token;
    }

    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, 'network', 'network error, cannot reach the server (' + (err && err.message ? err.message : err) + ').', null);
    }

    const data = await readJson(response);
    if (response.ok) return data;

    const e = data && typeof data === 'object' ? data.error : null;
    const message = e && typeof e.message === 'string' && e.message
      ? e.message
      : ('HTTP ' + response.status + ' ' + (response.statusText || '')).trim();
    if (response.status === 401) showTokenForm();
    throw new ApiError(response.status, (e && e.code) || 'http_' + response.status, message, (e && e.field) || null);
  }

  // ---------------------------------------------------------------- token

  function showTokenForm() {
    const form = $('token-form');
    if (!form.hidden) return;
    form.hidden = false;
    $('token').focus();
  }

  function saveToken(event) {
    event.preventDefault();
    const value = $('token').value.trim();
    if (value) storageSet(TOKEN_KEY, value);
    else storageRemove(TOKEN_KEY);
    $('token').value = '';
    $('token-form').hidden = true;
    setStatus(value ? 'Token saved for this tab. Repeat the last action.' : 'Token cleared.', 'ok');
  }

  // ---------------------------------------------------------------- predict

  async function ask(event) {
    if (event) event.preventDefault();
    if (state.asking) return;
    const input = $('utterance');
    const text = input.value.trim();
    if (!text) {
      setStatus('Type what was said first.', 'error');
      input.focus();
      return;
    }

    state.asking = true;
    $('ask').disabled = true;
    setStatus('Asking…', 'info');
    try {
      const answer = await api('POST', '/v1/predict', { text, session: sessionId() });
      showAnswer(answer);
      setStatus(answer.clarify
        ? 'The assistant is unsure: give feedback, or rephrase.'
        : 'Answered. Is it right? y = right, n = wrong, = correct.', 'info');
      // Move focus off the text field so y / n / = / u work right away.
      $('answer').focus();
    } catch (err) {
      reportError('Predict failed', err);
    } finally {
      state.asking = false;
      $('ask').disabled = false;
      refreshAll();
    }
  }

  function showAnswer(answer) {
    closeCorrect(false);
    state.current = {
      id: answer.interaction_id,
      text: answer.text,
      intent: answer.intent,
      top: Array.isArray(answer.top) ? answer.top : [],
      feedback: null,
      correctedIntent: null,
    };
    const textNode = $('answer-text');
    textNode.textContent = answer.text;
    applyLang(textNode, answer.text);
    $('answer-intent').textContent = answer.intent;
    renderConfidence(answer.confidence);
    renderTop(state.current.top, answer.intent);
    renderClarify(answer.clarify);
    $('answer-feedback').textContent = 'Interaction #' + answer.interaction_id +
      ' · model v' + answer.model_version + ' · waiting for feedback';
    $('answer-feedback').className = 'answer-feedback';
    updateButtons();
    markCurrentHistoryRow();
  }

  function confidenceClass(c) {
    if (!isNumber(c) || c < 0.5) return 'low';
    return c < 1 ? 'mid' : 'high';
  }

  function renderConfidence(confidence) {
    $('answer-confidence-value').textContent = fixed2(confidence);
    const frac = isNumber(confidence) ? clamp(confidence / CONFIDENCE_MAX, 0, 1) : 0;
    const fill = $('answer-confidence-fill');
    fill.setAttribute('width', (frac * 100).toFixed(1));
    fill.setAttribute('class', 'bar-fill ' + confidenceClass(confidence));
  }

  // A small horizontal SVG bar; frac in [0, 1].
  function makeBar(frac, fillClass) {
    const svg = svgEl('svg', {
      class: 'bar', viewBox: '0 0 100 8', preserveAspectRatio: 'none',
      'aria-hidden': 'true', focusable: 'false',
    });
    svg.appendChild(svgEl('rect', { class: 'bar-bg', x: 0, y: 0, width: 100, height: 8, rx: 2 }));
    svg.appendChild(svgEl('rect', {
      class: 'bar-fill ' + fillClass, x: 0, y: 0, width: (clamp(frac, 0, 1) * 100).toFixed(1), height: 8, rx: 2,
    }));
    return svg;
  }

  function renderTop(top, answered) {
    const list = $('answer-top');
    clear(list);
    for (const entry of top) {
      const li = el('li', { 'data-intent': entry.intent });
      if (entry.intent === answered) li.className = 'is-answer';
      li.appendChild(el('span', { class: 'intent-name' }, entry.intent));
      // Q-values live roughly in [-1, 1] (rewards are ±1): map that onto the bar.
      const q = isNumber(entry.q) ? entry.q : 0;
      li.appendChild(makeBar((q + 1) / 2, q >= 0 ? 'pos' : 'neg'));
      li.appendChild(el('span', { class: 'q' }, 'q ' + fixed2(entry.q)));
      list.appendChild(li);
    }
  }

  // clarify = null, or {prompt, options}: the server would rather hear the
  // sentence again. The options also work as one-click labels.
  function renderClarify(clarify) {
    const box = $('answer-clarify-box');
    const prompt = $('answer-clarify');
    const optionsBox = $('answer-clarify-options');
    clear(optionsBox);
    if (!clarify) {
      prompt.textContent = '';
      prompt.hidden = true;
      optionsBox.hidden = true;
      box.hidden = true;
      return;
    }
    const text = typeof clarify.prompt === 'string' ? clarify.prompt : '';
    prompt.textContent = text;
    applyLang(prompt, text);
    prompt.hidden = false;
    box.hidden = false;

    const options = Array.isArray(clarify.options) ? clarify.options : [];
    optionsBox.hidden = options.length === 0;
    if (options.length) optionsBox.appendChild(el('span', { class: 'hint' }, 'Or label it:'));
    for (const name of options) {
      const button = el('button', { type: 'button', class: 'small clarify-option', 'data-intent': name }, name);
      button.addEventListener('click', () => labelAs(name));
      optionsBox.appendChild(button);
    }
    updateButtons();
  }

  // ---------------------------------------------------------------- feedback

  function canGiveFeedback() {
    return !state.busy && state.current !== null && state.current.feedback === null;
  }

  function updateButtons() {
    const can = canGiveFeedback();
    for (const id of ['btn-right', 'btn-wrong', 'btn-correct']) $(id).disabled = !can;
    for (const button of $('answer-clarify-options').querySelectorAll('button')) button.disabled = !can;

    const undo = $('btn-undo');
    const last = state.feedbackStack[state.feedbackStack.length - 1];
    undo.disabled = state.busy || !last;
    undo.title = last ? 'Undo “' + last.feedback + '” on #' + last.id : 'Nothing to undo yet';
  }

  // Feedback buttons get disabled while a request runs, which drops focus
  // on <body>; put it back on the answer unless the user went to type.
  function focusAnswerUnlessTyping() {
    if (!isTextField(document.activeElement)) $('answer').focus();
  }

  function describeFeedback(cur) {
    const line = $('answer-feedback');
    let text;
    if (cur.feedback === 'right') text = '✓ Marked right.';
    else if (cur.feedback === 'wrong') text = '✗ Marked wrong. To say what it should be: u (undo), then =.';
    else if (cur.feedback === 'corrected') text = '✎ Corrected to ' + cur.correctedIntent + '.';
    else if (cur.feedback === 'elsewhere') text = 'This interaction already has feedback.';
    else text = 'Interaction #' + cur.id + ' · waiting for feedback';
    line.textContent = text;
    line.className = 'answer-feedback' + (cur.feedback ? ' fb-' + cur.feedback : '');
  }

  // A click on a suggested intent: the answer itself means "right".
  function labelAs(name) {
    if (!state.current) return;
    if (name === state.current.intent) sendFeedback('right');
    else sendFeedback('corrected', name);
  }

  async function sendFeedback(kind, intent) {
    if (!canGiveFeedback()) return;
    const cur = state.current;
    const body = { interaction_id: cur.id, feedback: kind };
    if (kind === 'corrected') body.intent = intent;

    state.busy = true;
    updateButtons();
    try {
      const result = await api('POST', '/v1/feedback', body);
      cur.feedback = (result && result.feedback) || kind;
      cur.correctedIntent = (result && result.corrected_intent) || (kind === 'corrected' ? intent : null);
      state.feedbackStack.push({ id: cur.id, feedback: cur.feedback });
      if (state.current === cur) describeFeedback(cur);
      const label = cur.feedback === 'corrected' ? 'corrected → ' + cur.correctedIntent : cur.feedback;
      setStatus('Feedback saved for #' + cur.id + ' (' + label + '); learning into model v' +
        (result ? result.model_version : '?') + '.', 'ok');
    } catch (err) {
      if (err.status === 409) {
        // Someone (another tab) already judged it; the server wants an undo first.
        cur.feedback = 'elsewhere';
        if (state.current === cur) describeFeedback(cur);
      }
      reportError('Feedback failed', err);
    } finally {
      state.busy = false;
      updateButtons();
      focusAnswerUnlessTyping();
      refreshAll();
    }
  }

  async function undo() {
    if (state.busy || state.feedbackStack.length === 0) return;
    const last = state.feedbackStack[state.feedbackStack.length - 1];

    state.busy = true;
    updateButtons();
    try {
      const result = await api('POST', '/v1/undo', { interaction_id: last.id });
      state.feedbackStack.pop();
      reopenIfCurrent(last.id);
      setStatus('Undid “' + ((result && result.undone) || last.feedback) + '” on #' + last.id +
        ' (model v' + (result ? result.model_version : '?') + '). You can judge it again.', 'ok');
    } catch (err) {
      if (err.status === 409) {
        // Nothing in force any more (undone elsewhere): forget it here too.
        state.feedbackStack.pop();
        reopenIfCurrent(last.id);
      }
      reportError('Undo failed', err);
    } finally {
      state.busy = false;
      updateButtons();
      focusAnswerUnlessTyping();
      refreshAll();
    }
  }

  function reopenIfCurrent(id) {
    const cur = state.current;
    if (!cur || cur.id !== id) return;
    cur.feedback = null;
    cur.correctedIntent = null;
    describeFeedback(cur);
  }

  // ---------------------------------------------------------------- correction picker

  function correctPanelOpen() {
    return !$('correct-panel').hidden;
  }

  function openCorrect() {
    if (!canGiveFeedback()) return;
    $('correct-panel').hidden = false;
    $('btn-correct').setAttribute('aria-expanded', 'true');
    const search = $('correct-search');
    search.value = '';
    renderCorrectList();
    search.focus();
    // Intents may have been added in another tab: refresh in the background.
    loadIntents().then(() => { if (correctPanelOpen()) renderCorrectList(); });
  }

  function closeCorrect(refocus) {
    if (!correctPanelOpen()) return;
    $('correct-panel').hidden = true;
    $('btn-correct').setAttribute('aria-expanded', 'false');
    $('correct-search').removeAttribute('aria-activedescendant');
    if (refocus) $('answer').focus();
  }

  // The runner-ups of the current answer first (most likely corrections),
  // then the rest alphabetically; the answered intent last.
  function orderedIntents() {
    const byName = new Map();
    for (const it of state.intents) {
      if (it && typeof it.name === 'string') byName.set(it.name, it);
    }
    const cur = state.current;
    const top = cur ? cur.top.map((t) => t.intent) : [];
    for (const name of top) {
      if (!byName.has(name)) byName.set(name, { name, description: null });
    }
    const rank = new Map(top.map((name, i) => [name, i]));
    const answered = cur ? cur.intent : null;
    return Array.from(byName.values()).sort((a, b) => {
      if ((a.name === answered) !== (b.name === answered)) return a.name === answered ? 1 : -1;
      const ra = rank.has(a.name) ? rank.get(a.name) : Infinity;
      const rb = rank.has(b.name) ? rank.get(b.name) : Infinity;
      if (ra !== rb) return ra - rb;
      return a.name.localeCompare(b.name);
    });
  }

  function matchesQuery(intent, query) {
    if (!query) return true;
    const name = intent.name.toLowerCase();
    const desc = (intent.description || '').toLowerCase();
    // "light on" should find light_on.
    const underscored = query.replace(/\s+/g, '_');
    return name.includes(query) || name.includes(underscored) || desc.includes(query);
  }

  function renderCorrectList() {
    const query = $('correct-search').value.trim().toLowerCase();
    const list = $('correct-list');
    const answered = state.current ? state.current.intent : null;
    clear(list);
    const shown = orderedIntents().filter((it) => matchesQuery(it, query));
    state.matches = shown.map((it) => it.name);
    state.activeOption = 0;

    shown.forEach((it, i) => {
      const li = el('li', { id: 'correct-opt-' + i, role: 'option', 'data-intent': it.name, 'aria-selected': 'false' });
      li.appendChild(el('span', { class: 'intent-name' }, it.name));
      if (it.description) li.appendChild(el('span', { class: 'intent-desc' }, it.description));
      if (it.name === answered) li.appendChild(el('span', { class: 'tag' }, 'current answer'));
      // Keep focus in the search box so the arrow keys keep working.
      li.addEventListener('mousedown', (e) => e.preventDefault());
      li.addEventListener('click', () => chooseCorrection(it.name));
      list.appendChild(li);
    });
    $('correct-empty').hidden = shown.length > 0;
    highlightOption();
  }

  function highlightOption() {
    const search = $('correct-search');
    const items = $('correct-list').children;
    for (let i = 0; i < items.length; i++) {
      const active = i === state.activeOption;
      items[i].classList.toggle('active', active);
      items[i].setAttribute('aria-selected', active ? 'true' : 'false');
      if (active) {
        search.setAttribute('aria-activedescendant', items[i].id);
        if (typeof items[i].scrollIntoView === 'function') items[i].scrollIntoView({ block: 'nearest' });
      }
    }
    if (!items.length) search.removeAttribute('aria-activedescendant');
  }

  function onCorrectSearchKey(event) {
    if (event.isComposing || event.keyCode === 229) return;  // IME (Chinese input) in progress
    const n = state.matches.length;
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      if (n) state.activeOption = (state.activeOption + 1) % n;
      highlightOption();
    } else if (event.key === 'ArrowUp') {
      event.preventDefault();
      if (n) state.activeOption = (state.activeOption - 1 + n) % n;
      highlightOption();
    } else if (event.key === 'Enter') {
      event.preventDefault();
      if (n) chooseCorrection(state.matches[state.activeOption]);
      else setStatus('No intent matches “' + $('correct-search').value.trim() + '”. Add it first under “Add an intent”.', 'error');
    } else if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      closeCorrect(true);
    }
  }

  function chooseCorrection(name) {
    closeCorrect(true);
    labelAs(name);
  }

  // ---------------------------------------------------------------- intents

  async function loadIntents() {
    try {
      const result = await api('GET', '/v1/intents');
      state.intents = result && Array.isArray(result.intents) ? result.intents : [];
      renderIntentList();
    } catch (err) {
      reportError('Cannot load intents', err);
    }
  }

  function renderIntentList() {
    const list = $('intent-list');
    clear(list);
    const sorted = state.intents.slice().sort((a, b) => String(a.name).localeCompare(String(b.name)));
    for (const it of sorted) {
      const li = el('li', { class: it.added ? 'chip added' : 'chip' }, it.name);
      if (it.description) li.setAttribute('title', it.description);
      list.appendChild(li);
    }
    $('intent-count').textContent = String(state.intents.length);
  }

  async function addIntent(event) {
    event.preventDefault();
    const input = $('new-intent');
    const button = $('add-intent');
    const name = input.value.trim();
    if (!name) {
      setStatus('Type a name for the new intent first.', 'error');
      input.focus();
      return;
    }
    // Other rules (no spaces, duplicates) are the server's: its message is shown.
    button.disabled = true;
    try {
      const result = await api('POST', '/v1/intents', { name });
      input.value = '';
      setStatus('Added intent “' + ((result && result.name) || name) + '” (model v' +
        (result ? result.model_version : '?') + '). Teach it with “Correct…”.', 'ok');
      await loadIntents();
      if (correctPanelOpen()) renderCorrectList();
    } catch (err) {
      reportError('Add intent failed', err);
    } finally {
      button.disabled = false;
      refreshAll();
    }
  }

  // ---------------------------------------------------------------- stats + plot

  async function loadStats() {
    const stats = await api('GET', '/v1/stats');
    const key = JSON.stringify(stats);
    if (key === state.lastStatsKey) return;  // unchanged: skip the redraw
    state.lastStatsKey = key;
    renderStats(stats || {});
  }

  function renderStats(s) {
    const fb = s.feedback || {};
    $('stats-interactions').textContent = count(s.interactions);
    $('stats-right').textContent = count(fb.right);
    $('stats-wrong').textContent = count(fb.wrong);
    $('stats-corrected').textContent = count(fb.corrected);
    $('stats-accuracy-50').textContent = percent(s.accuracy_last_50);
    $('stats-accuracy-200').textContent = percent(s.accuracy_last_200);
    $('stats-version').textContent = count(s.model_version);
    let serving = 'v' + count(s.serving_version);
    if (isNumber(s.learner_backlog)) serving += ' · ' + s.learner_backlog + ' to learn';
    $('stats-serving').textContent = serving;
    drawPlot(Array.isArray(s.recent) ? s.recent : []);
  }

  // Accuracy of the last `window` outcomes at every point (all points so far
  // while there are fewer than `window`).
  function rollingAccuracy(outcomes, window) {
    const out = [];
    let sum = 0;
    for (let i = 0; i < outcomes.length; i++) {
      sum += outcomes[i] ? 1 : 0;
      if (i >= window) sum -= outcomes[i - window] ? 1 : 0;
      out.push(sum / Math.min(i + 1, window));
    }
    return out;
  }

  const PLOT = { width: 600, height: 250, left: 48, right: 16, top: 34, bottom: 44 };

  function drawPlot(outcomes) {
    const svg = $('plot');
    // Keep the <title> (accessible name), redraw everything else.
    for (const child of Array.from(svg.childNodes)) {
      if (child.nodeName.toLowerCase() !== 'title') svg.removeChild(child);
    }
    const n = outcomes.length;
    svg.setAttribute('data-points', String(n));

    const x0 = PLOT.left;
    const x1 = PLOT.width - PLOT.right;
    const y0 = PLOT.top;
    const y1 = PLOT.height - PLOT.bottom;
    const yOf = (v) => y1 - v * (y1 - y0);
    const xOf = (i) => (n > 1 ? x0 + (i * (x1 - x0)) / (n - 1) : (x0 + x1) / 2);

    drawGrid(svg, x0, x1, yOf);
    drawLegend(svg, x0);

    const title = svg.querySelector('title');
    if (n === 0) {
      svg.appendChild(svgEl('text', { class: 'plot-empty', x: (x0 + x1) / 2, y: (y0 + y1) / 2, 'text-anchor': 'middle' },
        'No feedback yet'));
      if (title) title.textContent = 'Rolling accuracy: no feedback yet';
      return;
    }

    drawOutcomeStrip(svg, outcomes, xOf, x0, x1, y1);

    const acc = rollingAccuracy(outcomes, PLOT_WINDOW);
    if (n > 1) {
      const points = acc.map((v, i) => xOf(i).toFixed(1) + ',' + yOf(v).toFixed(1)).join(' ');
      svg.appendChild(svgEl('polyline', { class: 'plot-line', points }));
    }
    const last = acc[n - 1];
    svg.appendChild(svgEl('circle', { class: 'plot-dot', cx: xOf(n - 1).toFixed(1), cy: yOf(last).toFixed(1), r: 3.5 }));
    // Value label above the last point, or below it when near 100% (legend above).
    const labelY = yOf(last) - 8 < y0 + 6 ? yOf(last) + 18 : yOf(last) - 8;
    svg.appendChild(svgEl('text', {
      class: 'plot-value', x: Math.min(xOf(n - 1), x1 - 2).toFixed(1), y: labelY.toFixed(1), 'text-anchor': 'end',
    }, Math.round(last * 100) + '%'));

    // x-axis labels: first and last answer index.
    const ly = y1 + 34;
    svg.appendChild(svgEl('text', { class: 'plot-label', x: x0, y: ly, 'text-anchor': 'start' }, '1'));
    svg.appendChild(svgEl('text', { class: 'plot-label', x: (x0 + x1) / 2, y: ly, 'text-anchor': 'middle' },
      'answers with feedback (oldest → newest)'));
    svg.appendChild(svgEl('text', { class: 'plot-label', x: x1, y: ly, 'text-anchor': 'end' }, String(n)));

    if (title) {
      title.textContent = 'Rolling accuracy (window ' + PLOT_WINDOW + '): ' + Math.round(last * 100) +
        '% after ' + n + (n === 1 ? ' answer' : ' answers') + ' with feedback';
    }
  }

  function drawGrid(svg, x0, x1, yOf) {
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      const y = yOf(v).toFixed(1);
      const major = v === 0 || v === 0.5 || v === 1;
      svg.appendChild(svgEl('line', { class: major ? 'grid major' : 'grid', x1: x0, y1: y, x2: x1, y2: y }));
      if (major) {
        svg.appendChild(svgEl('text', { class: 'plot-label', x: x0 - 6, y: (yOf(v) + 4).toFixed(1), 'text-anchor': 'end' },
          Math.round(v * 100) + '%'));
      }
    }
    svg.appendChild(svgEl('line', { class: 'axis', x1: x0, y1: yOf(1), x2: x0, y2: yOf(0) }));
    svg.appendChild(svgEl('line', { class: 'axis', x1: x0, y1: yOf(0), x2: x1, y2: yOf(0) }));
  }

  function drawLegend(svg, x0) {
    const y = 14;
    let x = x0;
    svg.appendChild(svgEl('line', { class: 'plot-line', x1: x, y1: y, x2: x + 22, y2: y }));
    x += 28;
    svg.appendChild(svgEl('text', { class: 'plot-label', x, y: y + 4 }, 'rolling accuracy (last ' + PLOT_WINDOW + ')'));
    x += 205;
    svg.appendChild(svgEl('rect', { class: 'outcome-right', x, y: y - 5, width: 10, height: 10, rx: 2 }));
    svg.appendChild(svgEl('text', { class: 'plot-label', x: x + 15, y: y + 4 }, 'right'));
    x += 64;
    svg.appendChild(svgEl('rect', { class: 'outcome-wrong', x, y: y - 5, width: 10, height: 10, rx: 2 }));
    svg.appendChild(svgEl('text', { class: 'plot-label', x: x + 15, y: y + 4 }, 'wrong / corrected'));
  }

  // One tick per outcome under the x-axis: green right, red not right.
  function drawOutcomeStrip(svg, outcomes, xOf, x0, x1, y1) {
    const n = outcomes.length;
    const width = Math.max(1, Math.min(8, (x1 - x0) / n) - 0.6);
    outcomes.forEach((ok, i) => {
      const x = clamp(xOf(i) - width / 2, x0, x1 - width);
      svg.appendChild(svgEl('rect', {
        class: ok ? 'outcome-right' : 'outcome-wrong', x: x.toFixed(1), y: y1 + 6, width: width.toFixed(1), height: 8,
      }));
    });
  }

  // ---------------------------------------------------------------- history

  async function loadHistory() {
    const result = await api('GET', '/v1/history?limit=' + HISTORY_LIMIT);
    const items = result && Array.isArray(result.items) ? result.items : [];
    const key = JSON.stringify(items);
    if (key === state.lastHistoryKey) return;  // unchanged: keep the table (and any text selection)
    state.lastHistoryKey = key;
    renderHistory(items);
  }

  function formatTime(ms) {
    if (!isNumber(ms)) return { short: '–', full: '' };
    const d = new Date(ms);
    const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
    const today = d.toDateString() === new Date().toDateString();
    const short = today ? time : d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + time;
    return { short, full: d.toLocaleString() };
  }

  function renderHistory(items) {
    const tbody = $('history').tBodies[0];
    clear(tbody);
    for (const item of items) tbody.appendChild(historyRow(item));
    $('history-empty').hidden = items.length > 0;
    markCurrentHistoryRow();
  }

  function historyRow(item) {
    const tr = el('tr', { 'data-interaction-id': item.interaction_id });

    const time = formatTime(item.unix_ms);
    tr.appendChild(el('td', { class: 'time', title: time.full }, time.short));

    const text = el('td', { class: 'user-text', title: item.text }, item.text);
    applyLang(text, item.text);
    tr.appendChild(text);

    tr.appendChild(el('td', { class: 'intent-name' }, item.intent));
    tr.appendChild(el('td', { class: 'num' }, fixed2(item.confidence)));

    const fbCell = el('td');
    if (item.feedback) {
      fbCell.appendChild(el('span', { class: 'badge fb-' + item.feedback }, item.feedback));
      if (item.corrected_intent) {
        fbCell.appendChild(document.createTextNode(' → '));
        fbCell.appendChild(el('span', { class: 'intent-name' }, item.corrected_intent));
      }
    } else {
      fbCell.appendChild(el('span', { class: 'badge fb-none' }, '–'));
    }
    tr.appendChild(fbCell);
    return tr;
  }

  function markCurrentHistoryRow() {
    const id = state.current ? String(state.current.id) : null;
    for (const tr of $('history').tBodies[0].rows) {
      tr.classList.toggle('is-current', tr.getAttribute('data-interaction-id') === id);
    }
  }

  // ---------------------------------------------------------------- refresh loop

  let refreshing = null;
  let refreshAgain = false;

  // Stats and history together. A refresh asked for while one is running is
  // queued (not dropped) so the numbers always include the latest action.
  function refreshAll() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = Promise.allSettled([loadStats(), loadHistory()])
      .then(handleRefreshResults)
      .finally(() => {
        refreshing = null;
        if (refreshAgain) {
          refreshAgain = false;
          refreshAll();
        }
      });
    return refreshing;
  }

  // Report a failing refresh once (not every 5 s) and say when it recovers.
  function handleRefreshResults(results) {
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      if (!state.refreshFailing) {
        reportError('Cannot refresh stats', failed.reason);
        state.statusFromRefresh = true;
      }
      state.refreshFailing = true;
    } else if (state.refreshFailing) {
      state.refreshFailing = false;
      if (state.statusFromRefresh) setStatus('Connection restored.', 'ok');
    }
  }

  // ---------------------------------------------------------------- keyboard

  function onGlobalKey(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (isTextField(event.target)) return;

    const key = event.key;
    if (key === 'Escape' && correctPanelOpen()) {
      event.preventDefault();
      closeCorrect(true);
      return;
    }
    if (event.repeat) return;  // a held key must not fire twice

    // preventDefault matters for = and /: they move focus into a text field,
    // and the key would otherwise be typed into it.
    const actions = {
      y: () => sendFeedback('right'),
      n: () => sendFeedback('wrong'),
      '=': () => openCorrect(),
      u: () => undo(),
      '/': () => { const input = $('utterance'); input.focus(); input.select(); },
    };
    const action = actions[key.length === 1 ? key.toLowerCase() : key];
    if (!action) return;
    event.preventDefault();
    action();
  }

  // ---------------------------------------------------------------- questions

  async function askQuestion(event) {
    if (event) event.preventDefault();
    if (state.qaBusy) return;
    const input = $('question');
    const text = input.value.trim();
    if (!text) {
      setStatus('Type a question first.', 'error');
      input.focus();
      return;
    }
    state.qaBusy = true;
    updateQaButtons();
    setStatus('Asking…', 'info');
    try {
      const answer = await api('POST', '/v1/answer', { text, session: sessionId() });
      showQa(answer);
      setStatus('Answered. Right, wrong, or choose the candidate that answers it.', 'info');
    } catch (err) {
      if (err.code === 'no_answer_model') {
        $('qa-unavailable').hidden = false;
        $('qa-form').hidden = true;
      }
      reportError('Question failed', err);
    } finally {
      state.qaBusy = false;
      updateQaButtons();
    }
  }

  function showQa(answer) {
    state.qa = { id: answer.answer_id, answered: answer.entry_id, feedback: null };
    const textNode = $('qa-text');
    textNode.textContent = answer.text;
    applyLang(textNode, answer.text);
    const answerNode = $('qa-answer');
    answerNode.textContent = answer.answer === null ? 'I don\'t know.' : answer.answer;
    applyLang(answerNode, answer.answer || '');
    const list = $('qa-candidates');
    clear(list);
    for (const c of Array.isArray(answer.candidates) ? answer.candidates : []) {
      const li = el('li', { 'data-entry': c.entry_id, class: c.entry_id === answer.entry_id ? 'answered' : null });
      const question = el('span', { class: 'qa-question user-text' }, c.question);
      applyLang(question, c.question);
      const body = el('span', { class: 'qa-candidate-answer' }, c.answer);
      applyLang(body, c.answer);
      const q = el('span', { class: 'num' }, 'Q ' + fixed2(c.q));
      const choose = el('button', { type: 'button', class: 'small qa-this-one' }, 'This one');
      choose.addEventListener('click', () => sendQaFeedback('this_one', c.entry_id));
      li.append(question, body, q, choose);
      list.appendChild(li);
    }
    $('qa-feedback').textContent = 'Answer #' + answer.answer_id + ' · answer model v' + answer.model_version +
      ' · waiting for feedback';
    $('qa-result').hidden = false;
    updateQaButtons();
  }

  function updateQaButtons() {
    const open = state.qa !== null && state.qa.feedback === null && !state.qaBusy;
    for (const id of ['qa-right', 'qa-wrong', 'qa-none']) $(id).disabled = !open;
    for (const button of document.querySelectorAll('#qa-candidates button')) button.disabled = !open;
    $('qa-ask').disabled = state.qaBusy;
  }

  async function sendQaFeedback(kind, entryId) {
    const cur = state.qa;
    if (!cur || cur.feedback !== null || state.qaBusy) return;
    const body = { answer_id: cur.id, feedback: kind };
    if (kind === 'this_one') body.entry_id = entryId;
    state.qaBusy = true;
    updateQaButtons();
    try {
      const ack = await api('POST', '/v1/answer/feedback', body);
      cur.feedback = ack.feedback;
      const label = ack.feedback === 'this_one' ? 'this one → ' + ack.chosen : ack.feedback.replace(/_/g, ' ');
      $('qa-feedback').textContent = 'Answer #' + cur.id + ' · ' + label + ' · ' + ack.lessons.length +
        ' lessons · learning into answer model v' + ack.model_version;
      setStatus('Feedback saved for answer #' + cur.id + ' (' + label + ').', 'ok');
    } catch (err) {
      if (err.status === 409) cur.feedback = 'elsewhere';
      reportError('Feedback failed', err);
    } finally {
      state.qaBusy = false;
      updateQaButtons();
    }
  }

  // ---------------------------------------------------------------- start

  function init() {
    $('ask-form').addEventListener('submit', ask);
    $('btn-right').addEventListener('click', () => sendFeedback('right'));
    $('btn-wrong').addEventListener('click', () => sendFeedback('wrong'));
    $('btn-correct').addEventListener('click', () => (correctPanelOpen() ? closeCorrect(true) : openCorrect()));
    $('btn-undo').addEventListener('click', () => undo());
    $('correct-search').addEventListener('input', renderCorrectList);
    $('correct-search').addEventListener('keydown', onCorrectSearchKey);
    $('correct-close').addEventListener('click', () => closeCorrect(true));
    $('add-intent-form').addEventListener('submit', addIntent);
    $('qa-form').addEventListener('submit', askQuestion);
    $('qa-right').addEventListener('click', () => sendQaFeedback('right'));
    $('qa-wrong').addEventListener('click', () => sendQaFeedback('wrong'));
    $('qa-none').addEventListener('click', () => sendQaFeedback('none_of_these'));
    $('token-form').addEventListener('submit', saveToken);
    document.addEventListener('keydown', onGlobalKey);
    // Catch up at once when the tab becomes visible again.
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshAll(); });

    sessionId();
    updateButtons();
    drawPlot([]);
    loadIntents();
    refreshAll();
    window.setInterval(refreshAll, REFRESH_MS);
  }

  init();
})();
