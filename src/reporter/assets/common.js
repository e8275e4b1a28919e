'use strict';
// Shared by the pages: API calls with the token, safe element building (text only,
// never HTML from data), formatting and the live event stream.
const ci = (() => {
  const key = 'tinyci-token';
  let token = localStorage.getItem(key) || '';

  async function api(path, options = {}) {
    for (let tries = 0; tries < 3; tries++) {
      const headers = Object.assign({}, options.headers || {});
      if (token) headers['Authorization'] = 'Bearer ' + token;
      const response = await fetch(path, Object.assign({}, options, { headers }));
      if (response.status !== 401) return response;
      const given = window.prompt('This reporter needs its access token:');
      if (!given) return response;
      token = given.trim();
      localStorage.setItem(key, token);
    }
    throw new Error('not authorized');
  }

  async function json(path) {
    const response = await api(path);
    if (!response.ok) throw new Error(path + ': HTTP ' + response.status);
    return response.json();
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === 'class') node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function badge(word) { return el('span', { class: 'status ' + (word || 'unknown') }, word || '-'); }
  function sha(commit) { return el('code', { title: commit }, (commit || '').slice(0, 8)); }
  function duration(ms) {
    if (!ms) return '-';
    if (ms < 1000) return ms + ' ms';
    const s = ms / 1000;
    return s < 120 ? s.toFixed(1) + ' s' : Math.round(s / 60) + ' min';
  }
  function jobWord(job) { return job.status || job.state; }
  // A job's repository as tables show it: "-" for the default one.
  function repoName(repo) { return repo ? repo : '-'; }
  function jobLink(id) { return el('a', { href: '/jobs/' + id }, '#' + id); }
  function fill(tbody, rows) { tbody.replaceChildren(...rows); }

  // Calls onEvent(kind, data) for each event; shows the stream's state in #live. The
  // stream is closed when the page is left: a page kept in the browser's back/forward
  // cache would otherwise hold one of the few connections a browser opens to a host, and
  // after a few pages the next one could not load. Shown again, it reopens it and resets.
  function live(kinds, onEvent) {
    const url = '/api/events' + (token ? '?token=' + encodeURIComponent(token) : '');
    const mark = document.getElementById('live');
    let source = null;
    function open() {
      source = new EventSource(url);
      source.onopen = () => { mark.textContent = 'live'; mark.classList.add('on'); };
      source.onerror = () => { mark.textContent = 'reconnecting'; mark.classList.remove('on'); };
      for (const kind of kinds.concat(['reset'])) {
        source.addEventListener(kind, (e) => onEvent(kind, e.data ? JSON.parse(e.data) : {}));
      }
    }
    open();
    window.addEventListener('pagehide', () => source.close());
    window.addEventListener('pageshow', (e) => {
      if (!e.persisted) return;
      open();
      onEvent('reset', {});
    });
  }

  return { api, json, el, badge, sha, duration, jobWord, jobLink, fill, live, repoName };
})();
