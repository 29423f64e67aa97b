// Directories (LDAP) that check domain logins "user@DOMAIN", read only:
// they are configured in portcullis.conf ([directory "DOMAIN"] sections,
// docs/directories.md); this page shows what serve runs with and which
// directory groups map to which Portcullis groups.
import { list } from '../api.js';
import { ErrorText, Loading, Page, Table, useLoad } from '../ui.jsx';

function Directory({ d }) {
  const rows = [
    ['Servers (tried in order)', d.urls.join(' ')],
    ['StartTLS', d.starttls ? 'yes' : 'no'],
    ['CA file', d.ca_file || 'the system\u2019s'],
    ['User bind', d.bind || `search as ${d.bind_dn}`],
    ['Service account', d.bind_dn ? `${d.bind_dn} (password ${d.bind_password_sealed ? 'sealed' : 'missing'})` : 'none'],
    ['Users under', `${d.base_dn} with ${d.user_filter}`],
    ['Groups', d.group_attribute ? `from ${d.group_attribute}` : `under ${d.group_base_dn} with ${d.group_filter}`],
    ['Nested groups', d.nested_groups],
    ['Map by name', d.map_by_name ? 'yes' : 'no'],
    ['Timeouts', `connect ${d.connect_timeout_seconds} s, login ${d.timeout_seconds} s; ${d.max_concurrent_binds} binds at once; keys cached ${d.key_cache_seconds} s`],
  ];
  return (
    <section class="card" aria-label={`Directory ${d.domain}`}>
      <h2>{d.domain}</h2>
      <dl>
        {rows.map(([k, v]) => [<dt key={`${k}-t`}>{k}</dt>, <dd key={`${k}-d`}><code>{v}</code></dd>])}
      </dl>
      <Table caption={`Group mapping of ${d.domain}`} rows={d.map_group} rowKey="from"
        empty={d.map_by_name ? 'No explicit mapping: groups map by name.' : 'No group mapping: directory groups give no access.'}
        columns={[
          { label: 'Directory group', key: 'from' },
          { label: 'Portcullis group', key: 'to' },
          { label: 'Exists', render: (m) => (m.group_exists ? 'yes' : 'no (ignored)') },
        ]} />
    </section>
  );
}

export function Directories() {
  const dirs = useLoad(async () => (await list('/directories')).data);
  return (
    <Page title="Directories">
      <p class="muted">Logins <code>user@DOMAIN</code> are checked by the directory of DOMAIN.
        These come from the server's configuration file and are read only here.</p>
      {dirs.loading && !dirs.data && <Loading />}
      <ErrorText error={dirs.error} />
      {dirs.data && dirs.data.length === 0 && <p class="muted">No directories configured.</p>}
      {dirs.data && dirs.data.map((d) => <Directory key={d.domain} d={d} />)}
    </Page>
  );
}
