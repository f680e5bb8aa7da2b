// roomstorm chat page.
//
// URL parameters: ?room=ID&name=NICK prefill the form; ?server=http://host:port connects to
// another origin (default: this page's origin); ?transport=websocket|polling forces one
// transport (default: polling, upgraded to websocket).
//
// For tests: document.body.dataset.state is one of idle, connecting, connected, joined,
// reconnecting, left, error; body.dataset.transport names the live transport; every rendered
// message is li.msg.me / li.msg.other (with .nick and .text), every notice li.notice with
// data-event="join|quit|system|error" and data-username.
//
// User-supplied strings (nicknames, texts, room ids, error messages) are only ever put into
// the page with textContent / createTextNode, never parsed as HTML.
(function () {
  'use strict';

  var ROOM_RE = /^[A-Za-z0-9_.:\-]{1,64}$/;
  var CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
  var MAX_NAME_CHARS = 32;
  var MAX_TEXT_BYTES = 2000;

  var $ = function (id) { return document.getElementById(id); };
  var body = document.body;
  var els = {
    status: $('status'),
    statusText: $('status-text'),
    login: $('login'),
    loginForm: $('login-form'),
    loginError: $('login-error'),
    room: $('room'),
    name: $('name'),
    join: $('join'),
    chat: $('chat'),
    list: $('list'),
    composer: $('composer'),
    text: $('text'),
    send: $('send'),
    leave: $('leave'),
    roomInfo: $('room-info'),
    roomLabel: $('room-label'),
    meLabel: $('me-label'),
  };

  var params = new URLSearchParams(window.location.search);
  var serverParam = params.get('server');
  var transportParam = params.get('transport');
  var encoder = new TextEncoder();

  var socket = null;
  var me = null; // our username, as sent in `join` (trimmed, as the server trims)
  var room = null;
  var joined = false;
  var statusTimer = null;
  var lastSender = null; // to group consecutive messages of one sender

  // ---- status line -------------------------------------------------------------------

  function setState(state, text) {
    delete els.status.dataset.error;
    body.dataset.state = state;
    els.status.dataset.state = state;
    setStatusText(text);
  }

  function setStatusText(text, transient) {
    clearTimeout(statusTimer);
    els.statusText.textContent = text;
    els.status.title = text; // the line may be cut short on narrow screens
    if (transient) {
      statusTimer = setTimeout(function () {
        delete els.status.dataset.error;
        setStatusText(describeConnected());
      }, 6000);
    }
  }

  function transportName() {
    var engine = socket && socket.io && socket.io.engine;
    return engine && engine.transport ? engine.transport.name : '';
  }

  function describeConnected() {
    if (!socket || !socket.connected) return els.statusText.textContent;
    var t = transportName();
    return (joined ? 'connected' : 'connected, joining…') + (t ? ' · ' + t : '');
  }

  function showError(text) {
    body.dataset.lastError = text;
    els.status.dataset.error = 'true';
    setStatusText(text, true);
  }

  // ---- validation ----------------------------------------------------------------------

  function checkRoom(value) {
    if (!value) return 'Enter a room id.';
    if (!ROOM_RE.test(value)) return 'Room ids are 1–64 characters: letters, digits, _ . : -';
    return null;
  }

  function checkName(value) {
    if (!value) return 'Enter a nickname.';
    if (Array.from(value).length > MAX_NAME_CHARS) return 'Nicknames are at most 32 characters.';
    if (CONTROL_RE.test(value)) return 'Nicknames cannot contain control characters.';
    return null;
  }

  function serverUrl() {
    if (!serverParam) return null; // same origin
    try {
      var u = new URL(serverParam, window.location.href);
      if (!/^(https?|wss?):$/.test(u.protocol)) throw new Error('bad scheme');
      return u.origin.replace(/^ws/, 'http');
    } catch (e) {
      return undefined;
    }
  }

  // ---- rendering -----------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function hue(name) {
    var h = 0;
    for (var i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return h % 360;
  }

  function nearBottom() {
    var l = els.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
  }

  function append(node, forceScroll) {
    var stick = forceScroll || nearBottom();
    els.list.appendChild(node);
    if (stick) els.list.scrollTop = els.list.scrollHeight;
  }

  function timeLabel() {
    var d = new Date();
    return String(d.getHours()).padStart(2, '0') + ':' + String(d.getMinutes()).padStart(2, '0');
  }

  function addNotice(text, event, username) {
    var li = el('li', 'notice notice-' + event);
    li.dataset.event = event;
    if (username !== undefined) li.dataset.username = username;
    li.appendChild(el('span', null, text));
    append(li, false);
    lastSender = null;
    return li;
  }

  function addMessage(username, text) {
    var mine = username === me;
    var li = el('li', 'msg ' + (mine ? 'me' : 'other'));
    li.dataset.username = username;
    li.style.setProperty('--hue', String(hue(username)));
    if (lastSender === username) li.classList.add('cont');
    lastSender = username;

    var avatar = el('div', 'avatar', Array.from(username)[0] ? Array.from(username)[0].toUpperCase() : '?');
    avatar.setAttribute('aria-hidden', 'true');
    var bubbleWrap = el('div', 'body');
    var meta = el('div', 'meta');
    meta.appendChild(el('span', 'nick', username));
    var time = el('time', 'time', timeLabel());
    time.dateTime = new Date().toISOString();
    meta.appendChild(time);
    bubbleWrap.appendChild(meta);
    bubbleWrap.appendChild(el('div', 'text', text));
    li.appendChild(avatar);
    li.appendChild(bubbleWrap);
    append(li, mine);
  }

  function onMessage(msg) {
    if (!msg || typeof msg !== 'object' || !msg.data || typeof msg.data !== 'object') return;
    var data = msg.data;
    var username = typeof data.username === 'string' ? data.username : '';
    switch (msg.event) {
      case 'join':
        if (username === me && !joined) {
          joined = true;
          setState('joined', describeConnected());
          updateComposer();
          addNotice('You joined #' + room + ' as ' + username, 'join', username);
          if (!isTouch()) els.text.focus();
        } else {
          addNotice(username + ' joined', 'join', username);
        }
        break;
      case 'broadcast_say':
        if (typeof data.text === 'string') addMessage(username, data.text);
        break;
      case 'broadcast_quit':
        addNotice(username + ' left', 'quit', username);
        break;
      default:
        break; // unknown events are ignored
    }
  }

  // ---- connection ----------------------------------------------------------------------

  function transportOptions() {
    if (transportParam === 'websocket' || transportParam === 'polling') {
      return { transports: [transportParam], upgrade: false };
    }
    return { transports: ['polling', 'websocket'], upgrade: true };
  }

  function connect() {
    var target = serverUrl();
    if (target === undefined) {
      showLogin('The ?server= parameter is not an http(s) URL.');
      setState('error', 'bad ?server= parameter');
      return;
    }
    var opts = transportOptions();
    opts.path = '/socket.io/';
    opts.query = { roomid: room };
    opts.forceNew = true; // a new room is a new query: never reuse a cached manager
    opts.reconnection = true;
    opts.reconnectionDelay = 500;
    opts.reconnectionDelayMax = 5000;
    opts.timeout = 10000;
    // Say goodbye when the tab closes: a polling client that just vanishes is otherwise only
    // noticed at the heartbeat timeout.
    opts.closeOnBeforeunload = true;

    setState('connecting', 'connecting to ' + (target || window.location.host) + '…');
    socket = target ? io(target, opts) : io(opts);
    var s = socket;

    s.on('connect', function () {
      if (s !== socket) return;
      joined = false;
      body.dataset.transport = transportName();
      s.io.engine.once('upgrade', function () {
        if (s !== socket) return;
        body.dataset.transport = transportName();
        setStatusText(describeConnected());
      });
      setState('connected', describeConnected());
      updateComposer();
      // The server forgets us on every disconnect: (re)join on every connect.
      s.emit('join', { username: me });
    });

    s.on('message', function (msg) {
      if (s === socket) onMessage(msg);
    });

    s.on('error', function (err) {
      if (s !== socket) return;
      var code = err && typeof err.code === 'string' ? err.code : 'error';
      var message = err && typeof err.message === 'string' ? err.message : String(err);
      body.dataset.lastErrorCode = code;
      if (!joined) {
        // The join was refused: back to the form with the server's reason.
        teardown();
        setState('error', message + ' (' + code + ')');
        showLogin(message);
        return;
      }
      addNotice(message + ' (' + code + ')', 'error');
      showError(message + ' (' + code + ')');
    });

    s.on('connect_error', function (err) {
      if (s !== socket) return;
      var message = err && err.message ? err.message : 'connection failed';
      if (!s.active) {
        // Refused by the server (e.g. bad roomid): no retry.
        teardown();
        setState('error', 'refused: ' + message);
        showLogin('The server refused the connection: ' + message);
        return;
      }
      setState('reconnecting', 'reconnecting… (' + message + ')');
    });

    s.on('disconnect', function (reason) {
      if (s !== socket) return;
      var wasJoined = joined;
      joined = false;
      delete body.dataset.transport;
      updateComposer();
      if (reason === 'io client disconnect') return;
      if (reason === 'io server disconnect') {
        teardown();
        setState('error', 'disconnected by the server');
        addNotice('Disconnected by the server.', 'system');
        showLogin('The server closed the connection.');
        return;
      }
      setState('reconnecting', 'reconnecting… (connection lost: ' + reason + ')');
      if (wasJoined) addNotice('Connection lost, reconnecting…', 'system');
    });

    s.io.on('reconnect_attempt', function (n) {
      if (s !== socket) return;
      setState('reconnecting', 'reconnecting… (attempt ' + n + ')');
    });
  }

  function teardown() {
    var s = socket;
    socket = null;
    joined = false;
    delete body.dataset.transport;
    updateComposer();
    if (s) {
      s.off();
      s.io.off();
      s.disconnect();
    }
  }

  // ---- views ---------------------------------------------------------------------------

  function isTouch() {
    return window.matchMedia && window.matchMedia('(pointer: coarse)').matches;
  }

  function showLogin(error) {
    els.chat.hidden = true;
    els.roomInfo.hidden = true;
    els.login.hidden = false;
    els.join.disabled = typeof io !== 'function';
    if (error) {
      els.loginError.textContent = error;
      els.loginError.hidden = false;
    } else {
      els.loginError.hidden = true;
    }
    document.title = 'roomstorm chat';
  }

  function showChat() {
    els.login.hidden = true;
    els.chat.hidden = false;
    els.roomInfo.hidden = false;
    els.roomLabel.textContent = '#' + room;
    els.meLabel.textContent = 'as ' + me;
    document.title = '#' + room + ' · roomstorm';
    while (els.list.firstChild) els.list.removeChild(els.list.firstChild);
    lastSender = null;
  }

  function updateComposer() {
    var canSend = joined && els.text.value.trim() !== '';
    els.send.disabled = !canSend;
    els.composer.dataset.ready = joined ? 'true' : 'false';
  }

  function autosize() {
    if (els.text.value === '') {
      els.text.style.height = '';
      return;
    }
    els.text.style.height = 'auto';
    els.text.style.height = Math.min(els.text.scrollHeight, 160) + 'px';
  }

  // ---- events --------------------------------------------------------------------------

  els.loginForm.addEventListener('submit', function (e) {
    e.preventDefault();
    var r = els.room.value.trim();
    var n = els.name.value.trim();
    var problem = checkRoom(r) || checkName(n);
    if (problem) {
      showLogin(problem);
      (checkRoom(r) ? els.room : els.name).focus();
      return;
    }
    if (typeof io !== 'function') {
      showLogin('The socket.io client did not load.');
      return;
    }
    teardown();
    els.loginError.hidden = true;
    room = r;
    me = n;
    body.dataset.room = room;
    body.dataset.username = me;
    // Keep the choice in the address bar so a reload comes back to the same room.
    var next = new URLSearchParams(window.location.search);
    next.set('room', room);
    next.set('name', me);
    window.history.replaceState(null, '', window.location.pathname + '?' + next.toString());
    showChat();
    connect();
  });

  els.composer.addEventListener('submit', function (e) {
    e.preventDefault();
    var text = els.text.value;
    if (text.trim() === '') {
      els.text.focus();
      return;
    }
    if (!socket || !joined) {
      showError('Not in the room yet; wait for the connection.');
      return;
    }
    var bytes = encoder.encode(text).length;
    if (bytes > MAX_TEXT_BYTES) {
      var tooLong = 'Message too long: ' + bytes + ' bytes, at most ' + MAX_TEXT_BYTES + '. Not sent.';
      addNotice(tooLong, 'error');
      showError(tooLong);
      return;
    }
    // Not rendered here: the message appears when the server delivers it back to us.
    socket.emit('say', { text: text });
    els.text.value = '';
    autosize();
    updateComposer();
    els.text.focus();
  });

  els.text.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      els.composer.requestSubmit ? els.composer.requestSubmit() : els.send.click();
    }
  });

  els.text.addEventListener('input', function () {
    autosize();
    updateComposer();
  });

  els.leave.addEventListener('click', function () {
    teardown();
    setState('left', 'left #' + room);
    showLogin();
    els.name.focus();
  });

  // ---- start ---------------------------------------------------------------------------

  els.room.value = params.get('room') || '';
  els.name.value = params.get('name') || '';
  updateComposer();
  if (typeof io !== 'function') {
    showLogin('The socket.io client (/vendor/socket.io.min.js) did not load: on the server, run `npm ci --prefix web` in the roomstorm folder.');
    setState('error', 'socket.io client missing');
  } else if (serverUrl() === undefined) {
    showLogin('The ?server= parameter is not an http(s) URL.');
    setState('error', 'bad ?server= parameter');
  } else {
    showLogin();
    setState('idle', serverParam ? 'server: ' + serverUrl() : 'not connected');
  }
  (els.room.value ? (els.name.value ? els.join : els.name) : els.room).focus();
})();
