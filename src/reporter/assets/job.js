'use strict';
(() => {
  const { el, badge, sha, duration, jobWord, fill, repoName } = ci;
  const id = Number(location.pathname.split('/')[2]);
  const logBox = document.getElementById('log');
  let logOffset = 0;
  let logDone = false;
  let reading = false;

  async function summary() {
    const job = await ci.json('/api/jobs/' + id);
    document.title = 'tinyci job #' + id;
    const rows = [
      ['Job', '#' + job.id], ['Status', badge(jobWord(job))], ['Repository', repoName(job.repo)],
      ['Branch', job.branch],
      ['Commit', sha(job.commit)], ['Subject', job.subject], ['Author', job.author],
      ['Runner', job.runner || '-'], ['Attempt', job.attempt], ['Duration', duration(job.duration_ms)],
      ['Reason', job.reason || '-'],
      ['Requires', job.required && job.required.length ? job.required.join(', ') : '-']];
    if (job.state === 'queued' && job.waiting) rows.push(['Waiting', job.waiting]);
    document.getElementById('summary').replaceChildren(
      el('h2', {}, 'Job #' + job.id), el('dl', {}, ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])));
    return job;
  }

  async function tests() {
    const result = await ci.json('/api/jobs/' + id + '/tests');
    fill(document.querySelector('#tests tbody'), result.cases.map((c) => {
      const notes = [];
      if (c.flaky) notes.push(el('span', { class: 'flaky' }, 'flaky '));
      if (c.broken_by) {
        const ago = c.broken_by.commits_ago;
        notes.push(el('span', { class: 'broken' }, 'broken by ', sha(c.broken_by.commit), ' by ' +
          c.broken_by.author + ', ' + (ago === 0 ? 'this commit' : ago + ' commit' + (ago === 1 ? '' : 's') + ' ago')));
      }
      if (c.message) notes.push(el('div', {}, el('code', {}, c.message)));
      return el('tr', {}, el('td', {}, c.name), el('td', {}, badge(c.outcome)),
        el('td', {}, duration(c.ms)), el('td', {}, ...notes));
    }));
  }

  // Reads the log from where it stopped until it has all the bytes there are now.
  async function readLog() {
    if (reading) return;
    reading = true;
    try {
      for (;;) {
        const response = await ci.api('/api/jobs/' + id + '/log?offset=' + logOffset);
        if (!response.ok) break;
        const text = await response.text();
        const start = Number(response.headers.get('X-Log-Start'));
        if (start > logOffset) logBox.append('\n[... ' + (start - logOffset) + ' bytes omitted ...]\n');
        logBox.append(text);
        logOffset = start + new TextEncoder().encode(text).length;
        logDone = response.headers.get('X-Log-Done') === '1';
        if (text.length === 0 || logOffset >= Number(response.headers.get('X-Log-Total'))) break;
      }
    } finally {
      reading = false;
    }
  }

  async function all() { await summary(); await tests(); await readLog(); }
  all().catch(console.error);
  ci.live(['job.queued', 'job.started', 'job.log', 'job.finished', 'job.cancelled'], (kind, data) => {
    if (kind === 'reset') { all().catch(console.error); return; }
    if (!data.job || data.job.id !== id) return;
    if (kind === 'job.log') { if (!logDone) readLog().catch(console.error); return; }
    all().catch(console.error);
  });
})();
