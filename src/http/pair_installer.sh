#!/bin/sh
# Portcullis agent installer, made by @URL@ for one pairing code
# (docs/agent.md, "Install by pairing"). It holds this agent's credential:
# do not keep it, share it or run it twice. Run with -h for options.
set -eu

URL='@URL@'
SERVER='@WSURL@'
CODE='@CODE@'
FINGERPRINT='@FINGERPRINT@'
TLSPIN='@TLSPIN@'
SHA256='@SHA@'
CREDENTIAL='@CREDENTIAL@'
TAGS='@TAGS@'
NAME='@NAME@'
CA_PEM='@CA@'

PREFIX=''
AGENT_USER='portcullis-agent'
MAKE_USER=1
START=1
ID=''
PROXY=''
ALLOW=''

usage() {
    cat <<'USAGE'
usage: sh install.sh [options]   (curl ... | sudo sh -s -- [options])

Installs portcullis-agent, writes its config (server, pinned fingerprint,
credential), creates an unprivileged user and starts the systemd unit.

  --tag T          add a tag (repeatable; added to the code's tags)
  --name N         the agent's display name (default: the code's, or the
                   host name)
  --id ID          the agent ID (default: /etc/machine-id)
  --allow RULE     a target the server may reach, [udp:]HOST:PORT
                   (repeatable; default: this machine's loopback only)
  --proxy URL      reach the server through an HTTP proxy
                   (http://[user:pass@]host:port)
  --prefix DIR     install under DIR instead of / (no user, no unit)
  --user NAME      the agent's user (default: portcullis-agent)
  --no-user        create no user (run the agent as whoever you like)
  --no-start       install, but do not enable or start the unit
  -h, --help       this text
USAGE
}

die() {
    echo "portcullis: $*" >&2
    exit 1
}

oneline() {
    case "$2" in
    *'
'*) die "$1 must be one line" ;;
    esac
}

while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --tag | --name | --id | --allow | --proxy | --prefix | --user)
        [ $# -ge 2 ] || die "$1 needs a value"
        oneline "$1" "$2"
        case "$1" in
        --tag) TAGS="${TAGS:+$TAGS }$2" ;;
        --name) NAME="$2" ;;
        --id) ID="$2" ;;
        --allow) ALLOW="${ALLOW}allow = $2
" ;;
        --proxy) PROXY="$2" ;;
        --prefix) PREFIX="$2"; MAKE_USER=0; START=0 ;;
        --user) AGENT_USER="$2" ;;
        esac
        shift 2 ;;
    --no-user) MAKE_USER=0; shift ;;
    --no-start) START=0; shift ;;
    *) die "unknown option '$1' (see -h)" ;;
    esac
done

[ "$(uname -s)" = Linux ] || die "this installer is for Linux; $(uname -s) has no agent yet"
case "$(uname -m)" in
x86_64 | amd64) ;;
*) die "the server has an x86_64 agent only; this machine is $(uname -m)" ;;
esac
if [ -z "$PREFIX" ] && [ "$(id -u)" != 0 ]; then
    die "run as root (sudo sh), or install under a directory with --prefix DIR"
fi

BIN="$PREFIX/usr/local/bin/portcullis-agent"
CONF_DIR="$PREFIX/etc/portcullis"
CONF="$CONF_DIR/agent.conf"
UNIT="$PREFIX/etc/systemd/system/portcullis-agent.service"
TMP=$(mktemp "${TMPDIR:-/tmp}/portcullis-agent.XXXXXX")
trap 'rm -f "$TMP"' EXIT

echo "portcullis: downloading the agent from $URL"
if command -v curl >/dev/null 2>&1; then
    if [ -n "$TLSPIN" ]; then
        # -k: the pinned key is the check (the server's own certificate)
        curl -sSf -k --pinnedpubkey "$TLSPIN" -o "$TMP" "$URL/pair/$CODE/agent"
    else
        curl -sSf -o "$TMP" "$URL/pair/$CODE/agent"
    fi
elif [ -z "$TLSPIN" ] && command -v wget >/dev/null 2>&1; then
    wget -q -O "$TMP" "$URL/pair/$CODE/agent"
else
    die "curl is needed to download the agent"
fi || die "the agent download failed"
if command -v sha256sum >/dev/null 2>&1; then
    GOT=$(sha256sum "$TMP" | cut -d' ' -f1)
else
    GOT=$(openssl dgst -sha256 -r "$TMP" | cut -d' ' -f1)
fi
[ "$GOT" = "$SHA256" ] || die "the agent's SHA-256 is $GOT, not $SHA256: not installed"

mkdir -p "$(dirname "$BIN")" "$CONF_DIR"
install -m 0755 "$TMP" "$BIN"
if [ "$MAKE_USER" = 1 ] && ! id "$AGENT_USER" >/dev/null 2>&1; then
    if command -v useradd >/dev/null 2>&1; then
        useradd --system --no-create-home --home-dir / \
            --shell /usr/sbin/nologin "$AGENT_USER"
    else
        adduser -S -D -H -h / -s /sbin/nologin "$AGENT_USER"
    fi
fi

umask 077
{
    echo "# portcullis-agent, installed by pairing from $URL"
    echo "server = $SERVER"
    echo "fingerprint = $FINGERPRINT"
    echo "credential = $CREDENTIAL"
    [ -n "$ID" ] && echo "id = $ID"
    [ -n "$NAME" ] && echo "name = $NAME"
    for t in $TAGS; do echo "tag = $t"; done
    [ -n "$ALLOW" ] && printf '%s' "$ALLOW"
    [ -n "$PROXY" ] && echo "proxy = $PROXY"
    [ -n "$CA_PEM" ] && echo "ca = /etc/portcullis/server-ca.pem"
    true
} >"$CONF.new"
mv "$CONF.new" "$CONF"
if [ -n "$CA_PEM" ]; then
    printf '%s\n' "$CA_PEM" >"$CONF_DIR/server-ca.pem"
    if [ -n "$PREFIX" ]; then
        sed -i "s|^ca = .*|ca = $CONF_DIR/server-ca.pem|" "$CONF"
    fi
fi
if [ "$MAKE_USER" = 1 ]; then
    chown "$AGENT_USER" "$CONF"
fi
echo "portcullis: installed $BIN and $CONF"

if [ -n "$PREFIX" ] || ! command -v systemctl >/dev/null 2>&1 ||
    [ ! -d /run/systemd/system ]; then
    echo "portcullis: no systemd here (or --prefix): start the agent with"
    echo "  $BIN -c $CONF"
    [ "$MAKE_USER" = 1 ] && echo "as the user $AGENT_USER (for example with su or your init system)"
    exit 0
fi
cat >"$UNIT" <<UNIT
[Unit]
Description=Portcullis agent (outbound connection to the access server)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User=$AGENT_USER
ExecStart=$BIN -c $CONF
Restart=always
RestartSec=5
NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
UMask=0077

[Install]
WantedBy=multi-user.target
UNIT
chmod 0644 "$UNIT"
systemctl daemon-reload
if [ "$START" = 1 ]; then
    systemctl enable --now portcullis-agent.service
    echo "portcullis: the agent runs (systemctl status portcullis-agent)"
else
    echo "portcullis: start it with: systemctl enable --now portcullis-agent"
fi
