'use strict';
(() => {
  const { el, badge, sha, duration, jobWord, jobLink, fill } = ci;
  const body = (id) => document.querySelector('#' + id + ' tbody');
  // /?branch=NAME: the recent jobs of that branch only.
  const branch = new URLSearchParams(location.search).get('branch');
  if (branch) document.getElementById('jobs-title').textContent = 'Recent jobs on ' + branch;

  function tests(job) {
    if (job.tests_run < 0) return '-';
    const failed = Math.max(job.tests_failed, 0);
    return (job.tests_run - failed) + ' passed, ' + failed + ' failed';
  }

  async function refresh() {
    const jobsPath = '/api/jobs?limit=50' + (branch ? '&branch=' + encodeURIComponent(branch) : '');
    const [branches, jobs, runners] = await Promise.all([
      ci.json('/api/branches'), ci.json(jobsPath), ci.json('/api/runners')]);
    fill(body('branches'), branches.map((b) => el('tr', {},
      el('td', {}, el('a', { href: '/?branch=' + encodeURIComponent(b.name) }, b.name)),
      el('td', {}, badge(b.state)),
      el('td', {}, b.since ? sha(b.since.commit) : '-', b.since ? ' by ' + b.since.author : ''),
      el('td', {}, jobLink(b.latest.id), ' ', badge(jobWord(b.latest))))));
    fill(body('jobs'), jobs.jobs.map((j) => el('tr', {},
      el('td', {}, jobLink(j.id)), el('td', {}, badge(jobWord(j))), el('td', {}, sha(j.commit)),
      el('td', {}, j.subject), el('td', {}, j.author), el('td', {}, j.branch),
      el('td', {}, j.runner || '-'), el('td', {}, duration(j.duration_ms)),
      el('td', {}, tests(j)))));
    fill(body('runners'), runners.map((r) => el('tr', {},
      el('td', {}, r.address), el('td', {}, badge(r.state)),
      el('td', {}, r.job ? jobLink(r.job) : '-'))));
  }

  // Events come in bursts: one refresh for a burst.
  let pending = null;
  function soon() {
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh().catch(console.error); }, 250);
  }

  refresh().catch(console.error);
  ci.live(['job.queued', 'job.started', 'job.finished', 'job.cancelled', 'runner.joined',
           'runner.left'], soon);
})();
