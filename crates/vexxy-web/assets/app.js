// vexxy web UI: progressive enhancement only. Every page works without
// this file; it keeps a job's progress current and makes the review
// queue keyboard-driven. Loaded from this origin (CSP script-src 'self').
'use strict';

(function () {
  const FINISHED = ['complete', 'failed', 'cancelled'];

  function watchJob(section) {
    const id = section.dataset.jobId;
    const status = document.getElementById('job-status');
    const phase = document.getElementById('job-phase');
    const progress = document.getElementById('job-progress');
    const attempts = document.getElementById('job-attempts');
    const error = document.getElementById('job-error');
    const done = document.getElementById('job-done');
    const link = document.getElementById('job-image');
    let failures = 0;

    function show(s) {
      status.textContent = s.status;
      status.dataset.status = s.status;
      status.className = 'badge job-' + s.status;
      phase.textContent = s.current_phase || '—';
      progress.value = s.progress_percent;
      progress.textContent = s.progress_percent + '%';
      attempts.textContent = String(s.attempts);
      if (s.error) {
        error.textContent = s.error;
        error.hidden = false;
      }
      if (s.status === 'complete' && s.image_digest) {
        link.href = '/images/' + encodeURIComponent(s.image_digest).replace('%3A', ':');
        done.hidden = false;
      }
    }

    async function tick() {
      if (FINISHED.includes(status.dataset.status)) return;
      try {
        const res = await fetch('/jobs/' + encodeURIComponent(id) + '/status.json', {
          credentials: 'same-origin',
          headers: { accept: 'application/json' },
          cache: 'no-store',
        });
        if (!res.ok || !(res.headers.get('content-type') || '').includes('json')) throw new Error(String(res.status));
        show(await res.json());
        failures = 0;
      } catch (e) {
        failures += 1;
      }
      if (!FINISHED.includes(status.dataset.status)) {
        setTimeout(tick, Math.min(1000 * (1 + failures), 10000));
      }
    }
    setTimeout(tick, 500);
  }

  function keyboardQueue(table) {
    const rows = Array.from(table.querySelectorAll('tbody tr'));
    if (rows.length === 0) return;
    const reason = document.getElementById('bulk-reason');
    let at = -1;

    function focusRow(i) {
      at = Math.max(0, Math.min(rows.length - 1, i));
      rows[at].focus();
    }

    document.addEventListener('keydown', function (ev) {
      if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
      const t = ev.target;
      if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return;
      const current = rows.indexOf(document.activeElement && document.activeElement.closest ? document.activeElement.closest('tr') : null);
      if (current >= 0) at = current;
      switch (ev.key) {
        case 'j': focusRow(at + 1); break;
        case 'k': focusRow(at - 1); break;
        case 'x': {
          if (at < 0) return;
          const box = rows[at].querySelector('input[type=checkbox]');
          if (box) box.checked = !box.checked;
          break;
        }
        case 'o': {
          if (at < 0) return;
          const a = rows[at].querySelector('a.open');
          if (a) window.location.assign(a.href);
          break;
        }
        case 'a': {
          if (at < 0) return;
          if (reason && reason.value.trim() === '') {
            reason.focus();
            reason.setAttribute('aria-invalid', 'true');
            return;
          }
          const b = rows[at].querySelector('button.approve');
          if (b) b.click();
          break;
        }
        default: return;
      }
      ev.preventDefault();
    });
  }

  function start() {
    const job = document.getElementById('job');
    if (job) watchJob(job);
    const queue = document.getElementById('queue');
    if (queue) keyboardQueue(queue);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
