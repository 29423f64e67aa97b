// What the signed-in user may do on /root, from GET /me's roles
// (docs/api.md's permissions): the navigation shows only what they can
// use, so nobody lands on a page that can only answer 403. The job roles
// (GET /me's job_roles: job-runner, job-pusher, job-scheduler on client
// groups) open Jobs, File push and Schedules to a user who is not an
// administrator, on those groups' agents only; the server checks each
// request regardless.
export function powers(me) {
  const root = (me.roles || []).filter((r) => r.site === '/root').map((r) => r.role);
  const admin = root.includes('administrator');
  const jobs = (role) => admin || (me.job_roles || []).some((r) => r.role === role);
  return {
    self: true,
    admin,
    config: admin || root.includes('configuration-manager'),
    runner: jobs('job-runner'),
    pusher: jobs('job-pusher'),
    scheduler: jobs('job-scheduler'),
  };
}

// The client groups on which me holds role (for a non-administrator's
// target choices).
export function jobGroups(me, role) {
  return [...new Set((me.job_roles || []).filter((r) => r.role === role).map((r) => r.client_group))].sort();
}
