// Tributary dashboard: live progress, actions, and sign-in when the server asks for tokens.
// The pages work without this script for reading (when no token is needed); it adds:
// - the token, kept in sessionStorage and sent as a bearer header (never a cookie);
// - actions through the JSON API (fetch), and the page's content fetched again after one;
// - progress and status as they happen, read from /v1/events (server-sent events read
//   through fetch, since EventSource cannot send an Authorization header).
'use strict';
(() => {
  const TOKEN_KEY = 'tributary.token';
  const main = document.getElementById('main');
  const notice = document.getElementById('notice');
  const signIn = document.getElementById('sign-in');
  const signOut = document.getElementById('sign-out');
  const needsAuth = document.body.dataset.auth === 'required';
  const token = () => sessionStorage.getItem(TOKEN_KEY);
  const terminal = new Set(['completed', 'failed', 'cancelled']);
  const tones = { completed: 'ok', failed: 'bad', retrying: 'warn', running: 'info', queued: 'info', cancelled: 'muted' };

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = token();
    if (t) h.Authorization = 'Bearer ' + t;
    return h;
  }

  function say(text, bad) {
    notice.textContent = '';
    const p = document.createElement('p');
    p.textContent = text;
    if (bad) p.className = 'bad';
    notice.appendChild(p);
  }

  function showSignIn(message) {
    if (!signIn) return;
    signIn.hidden = false;
    main.textContent = '';
    document.getElementById('sign-in-error').textContent = message || '';
    document.getElementById('token').focus();
  }

  // The page's content again, as the server renders it for this token.
  async function loadMain() {
    let res;
    try {
      res = await fetch(location.pathname + location.search, { headers: headers({ 'X-Tributary-Fragment': '1' }), cache: 'no-store' });
    } catch (e) {
      say('The server did not answer: ' + e.message, true);
      return false;
    }
    if (res.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn('That token was not accepted.');
      return false;
    }
    main.innerHTML = await res.text();
    if (signIn) signIn.hidden = true;
    if (signOut) signOut.hidden = !token();
    document.dispatchEvent(new CustomEvent('tributary:loaded'));
    return true;
  }

  let refreshTimer = null;
  function refreshSoon(ms) {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; loadMain(); }, ms || 800);
  }

  async function problemText(res) {
    try {
      const p = await res.json();
      return (p.title || res.status) + (p.detail ? ': ' + p.detail : '');
    } catch (e) {
      return 'HTTP ' + res.status;
    }
  }

  async function act(button) {
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    try {
      const init = { method: button.dataset.method || 'POST', headers: headers({ Accept: 'application/json' }) };
      if (button.dataset.body) {
        init.headers['Content-Type'] = 'application/json';
        init.body = button.dataset.body;
      }
      const res = await fetch(button.dataset.url, init);
      if (!res.ok) {
        say(await problemText(res), true);
        return;
      }
      let text = button.dataset.done || 'Done';
      const body = await res.json().catch(() => null);
      if (body && typeof body.affected === 'number') text += ': ' + body.affected + ' of ' + body.matched + ' syncs';
      say(text);
      refreshSoon(300);
    } catch (e) {
      say('The server did not answer: ' + e.message, true);
    } finally {
      button.disabled = false;
    }
  }

  async function bulk(button) {
    const action = button.dataset.bulk;
    const ids = Array.from(main.querySelectorAll('input[name="sync"]:checked')).map((c) => c.value);
    if (ids.length === 0) { say('Select syncs first.', true); return; }
    button.disabled = true;
    let done = 0;
    const refused = [];
    for (const id of ids) {
      const res = await fetch('/v1/syncs/' + encodeURIComponent(id) + '/' + action, { method: 'POST', headers: headers({ Accept: 'application/json' }) });
      if (res.ok) done += 1; else refused.push(id + ' (' + (await problemText(res)) + ')');
    }
    button.disabled = false;
    say((action === 'cancel' ? 'Cancelled ' : 'Queued again ') + done + ' of ' + ids.length + (refused.length ? '; refused: ' + refused.join(', ') : ''), refused.length > 0);
    refreshSoon(300);
  }

  main.addEventListener('click', (event) => {
    const action = event.target.closest('button[data-url]');
    if (action) { act(action); return; }
    const many = event.target.closest('button[data-bulk]');
    if (many) bulk(many);
  });
  // New secrets for a credential: only the fields filled in are sent; the inputs are
  // emptied once the server took them (the page never shows a secret).
  main.addEventListener('submit', async (event) => {
    const form = event.target.closest('form[data-patch]');
    if (!form) return;
    event.preventDefault();
    const config = {};
    form.querySelectorAll('input[name]').forEach((input) => { if (input.value !== '') config[input.name] = input.value; });
    if (Object.keys(config).length === 0) { say('Fill in a secret first.', true); return; }
    const button = form.querySelector('button');
    if (button) button.disabled = true;
    try {
      const res = await fetch(form.dataset.patch, {
        method: 'PATCH', headers: headers({ Accept: 'application/json', 'Content-Type': 'application/json' }),
        body: JSON.stringify({ config: config }),
      });
      if (!res.ok) { say(await problemText(res), true); return; }
      form.querySelectorAll('input[name]').forEach((input) => { input.value = ''; });
      say(form.dataset.done || 'Saved');
      refreshSoon(300);
    } catch (e) {
      say('The server did not answer: ' + e.message, true);
    } finally {
      if (button) button.disabled = false;
    }
  });
  main.addEventListener('change', (event) => {
    if (event.target.id !== 'select-all') return;
    main.querySelectorAll('input[name="sync"]').forEach((c) => { c.checked = event.target.checked; });
  });

  // Live updates.
  function setText(selector, text) {
    main.querySelectorAll(selector).forEach((el) => { el.textContent = text; });
  }

  function onProgress(data) {
    const id = data.sync_id, p = data.progress || {};
    const read = Number(p.records_read || 0);
    setText('[data-records="' + CSS.escape(id) + '"]', read.toLocaleString('en-US'));
    setText('[data-pages="' + CSS.escape(id) + '"]', String(p.pages || 0));
    main.querySelectorAll('progress[data-sync="' + CSS.escape(id) + '"]').forEach((bar) => {
      if (!bar.hasAttribute('max')) return;
      if (read > bar.max) bar.max = read;
      bar.value = read;
    });
  }

  function onStatus(sync) {
    const badges = main.querySelectorAll('[data-status="' + CSS.escape(sync.id) + '"]');
    let changed = false;
    badges.forEach((badge) => {
      if (badge.textContent !== sync.status) changed = true;
      badge.textContent = sync.status;
      badge.className = 'badge ' + (tones[sync.status] || 'muted');
    });
    if (sync.progress) onProgress({ sync_id: sync.id, progress: sync.progress });
    const running = main.querySelector('[data-live][data-refresh="running"]');
    if (running) {
      const shown = main.querySelector('[data-running="' + CSS.escape(sync.id) + '"]');
      if ((sync.status === 'running' && !shown) || (shown && sync.status !== 'running')) refreshSoon();
    }
    if (changed && main.querySelector('[data-refresh-on="' + CSS.escape(sync.id) + '"]')) refreshSoon();
  }

  function dispatch(event, text) {
    let data;
    try { data = JSON.parse(text); } catch (e) { return; }
    if (event === 'progress') onProgress(data);
    else if (event === 'status') onStatus(data);
  }

  let streaming = null;
  async function stream(url) {
    let lastID = null;
    for (;;) {
      try {
        const h = headers({ Accept: 'text/event-stream' });
        if (lastID) h['Last-Event-ID'] = lastID;
        const res = await fetch(url, { headers: h, cache: 'no-store' });
        if (res.status === 401) return;
        if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let event = 'message', data = '';
            for (const line of block.split('\n')) {
              if (line === '' || line.startsWith(':')) continue;
              const colon = line.indexOf(':');
              const field = colon < 0 ? line : line.slice(0, colon);
              let v = colon < 0 ? '' : line.slice(colon + 1);
              if (v.startsWith(' ')) v = v.slice(1);
              if (field === 'event') event = v;
              else if (field === 'data') data += (data ? '\n' : '') + v;
              else if (field === 'id') lastID = v;
            }
            if (data) dispatch(event, data);
          }
        }
      } catch (e) {
        // The stream broke (a node restarting, the network): try again below.
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  function startLive() {
    const scope = main.querySelector('[data-live]');
    if (!scope || streaming) return;
    const source = scope.dataset.live;
    streaming = stream('/v1/events' + (source && source !== 'all' ? '?source_id=' + encodeURIComponent(source) : ''));
  }
  document.addEventListener('tributary:loaded', startLive);

  if (signIn) {
    signIn.addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = document.getElementById('token');
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = '';
      await loadMain();
    });
  }
  if (signOut) {
    signOut.hidden = !token();
    signOut.addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); });
  }
  if (needsAuth) {
    if (token()) loadMain(); else showSignIn();
  } else {
    startLive();
  }
})();
