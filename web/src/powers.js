// What the signed-in user may do on /root, from GET /me's roles
// (docs/api.md's permissions): the navigation shows only what they can
// use, so nobody lands on a page that can only answer 403.
export function powers(me) {
  const root = (me.roles || []).filter((r) => r.site === '/root').map((r) => r.role);
  const admin = root.includes('administrator');
  return { self: true, admin, config: admin || root.includes('configuration-manager') };
}
