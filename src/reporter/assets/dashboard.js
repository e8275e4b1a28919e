'use strict';
(() => {
  const { el, badge, sha, duration, jobWord, jobLink, fill, repoName } = ci;
  const body = (id) => document.querySelector('#' + id + ' tbody');
  // /?repo=NAME: one repository only ("-": the default one); /?branch=NAME: the recent
  // jobs of that branch only (of the repository given, or of every one).
  const params = new URLSearchParams(location.search);
  const branch = params.get('branch');
  const repo = params.get('repo');  // null: every repository
  const repoArg = (name) => (name === '' ? '-' : name);
  if (branch) {
    document.getElementById('jobs-title').textContent = 'Recent jobs on ' +
      (repo && repo !== '-' ? repo + ' ' : '') + branch;
  } else if (repo !== null) {
    document.getElementById('jobs-title').textContent = 'Recent jobs of ' + (repo || '-');
  }
  const select = document.getElementById('repo');
  select.addEventListener('change', () => {
    const next = new URLSearchParams();
    if (select.value) next.set('repo', select.value);
    location.search = next.toString();
  });

  function tests(job) {
    if (job.tests_run < 0) return '-';
    const failed = Math.max(job.tests_failed, 0);
    return (job.tests_run - failed) + ' passed, ' + failed + ' failed';
  }

  // The status, and under it why a queued job waits.
  function status(job) {
    const cell = el('td', {}, badge(jobWord(job)));
    if (job.state === 'queued' && job.waiting) cell.append(el('div', { class: 'waiting' }, job.waiting));
    return cell;
  }

  // The selector's repositories; rebuilt only when they change (not under an open list).
  let shownRepos = null;
  function repoOptions(repos) {
    const chosen = repo === null ? '' : repo || '-';
    const names = repos.map((r) => repoArg(r.name));
    if (chosen && !names.includes(chosen)) names.push(chosen);
    if (shownRepos === names.join('\n')) return;
    shownRepos = names.join('\n');
    select.replaceChildren(el('option', { value: '' }, 'all repositories'),
      ...names.map((name) => el('option', { value: name }, name === '-' ? '- (default)' : name)));
    select.value = chosen;
  }

  async function refresh() {
    const only = repo === null ? '' : '&repo=' + encodeURIComponent(repo || '-');
    const jobsPath = '/api/jobs?limit=50' + only +
      (branch ? '&branch=' + encodeURIComponent(branch) : '');
    const [repos, branches, jobs, runners] = await Promise.all([
      ci.json('/api/repos'), ci.json('/api/branches?' + only.slice(1)), ci.json(jobsPath),
      ci.json('/api/runners')]);
    repoOptions(repos);
    fill(body('branches'), branches.map((b) => el('tr', {},
      el('td', {}, repoName(b.repo)),
      el('td', {}, el('a', { href: '/?repo=' + encodeURIComponent(repoArg(b.repo)) +
                               '&branch=' + encodeURIComponent(b.name) }, b.name)),
      el('td', {}, badge(b.state)),
      el('td', {}, b.since ? sha(b.since.commit) : '-', b.since ? ' by ' + b.since.author : ''),
      el('td', {}, jobLink(b.latest.id), ' ', badge(jobWord(b.latest))))));
    fill(body('jobs'), jobs.jobs.map((j) => el('tr', {},
      el('td', {}, jobLink(j.id)), status(j), el('td', {}, sha(j.commit)),
      el('td', {}, j.subject), el('td', {}, j.author), el('td', {}, repoName(j.repo)),
      el('td', {}, j.branch), el('td', {}, j.runner || '-'), el('td', {}, duration(j.duration_ms)),
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
