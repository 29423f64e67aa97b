/*
 * `portcullis init` and `portcullis serve`: creating a data directory and
 * running the server from it.
 *
 * init writes portcullis.conf, three SSH host keys (Ed25519, the one
 * agents pin; ECDSA P-256 and RSA 3072 for users' clients, as sshd has), a
 * self-signed TLS certificate and key for the HTTP listener, the vault key
 * and the database with one `admin` user, and prints the admin password
 * once (only its hash is stored) and the fingerprints of the host keys and
 * the certificate. It never overwrites: an existing file refuses the run. If a
 * step fails, the files this run created are removed again, so the run
 * can simply be repeated.
 *
 * The certificate is made with OpenSSL's C API (the library libwebsockets
 * serves TLS with), not by running the openssl program. A loopback listen
 * address gets plain HTTP for development and the TLS lines commented out;
 * any other address gets them active, because `serve` refuses plain HTTP
 * off loopback (http_addr.h).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "auth/jwt.h"
#include "auth/password.h"
#include "cli/cli.h"
#include "common/err.h"
#include "common/hostkey.h"
#include "common/log.h"
#include "common/util.h"
#include "common/vault.h"
#include "store/store.h"
#include "daemon/daemon.h"
#include "common/addr.h"
#include "store/access.h"
#include "store/audit.h"

#define INIT_ADMIN_NAME "admin"
#define INIT_ADMIN_PASSWORD_LEN 20

/*
 * The HTTPS certificate. ECDSA P-256: every TLS client and browser takes
 * it (Ed25519 certificates are still refused by browsers), and OpenSSL 3
 * under libwebsockets 4.1 serves it. 825 days is the longest validity
 * Apple's clients accept for a server certificate; notBefore is set a few
 * minutes back so a client whose clock lags a little still accepts it.
 */
#define INIT_TLS_CN "portcullis"
#define INIT_TLS_DAYS 825
#define INIT_TLS_BACKDATE_SECONDS 300
#define INIT_TLS_SERIAL_BYTES 16
#define INIT_TLS_SAN_MAX 512
/* "SHA256:" and 32 bytes as "AB:" */
#define INIT_TLS_FP_MAX (7 + 32 * 3)

/* Files in the data directory, by their names in portcullis.conf. */
enum init_file {
    INIT_CONF,
    INIT_HOST_KEY,
    INIT_HOST_PUB,
    INIT_ECDSA_KEY,
    INIT_ECDSA_PUB,
    INIT_RSA_KEY,
    INIT_RSA_PUB,
    INIT_TLS_CERT,
    INIT_TLS_KEY,
    INIT_VAULT,
    INIT_DB,
    INIT_DB_WAL,
    INIT_DB_SHM,
    INIT_DB_JOURNAL,
    INIT_AUDIT,
    INIT_JWT,
    INIT__COUNT
};

static const char *const init_names[INIT__COUNT] = {
    [INIT_CONF] = "portcullis.conf",
    [INIT_HOST_KEY] = "ssh_host_ed25519_key",
    [INIT_HOST_PUB] = "ssh_host_ed25519_key.pub",
    [INIT_ECDSA_KEY] = "ssh_host_ecdsa_key",
    [INIT_ECDSA_PUB] = "ssh_host_ecdsa_key.pub",
    [INIT_RSA_KEY] = "ssh_host_rsa_key",
    [INIT_RSA_PUB] = "ssh_host_rsa_key.pub",
    [INIT_TLS_CERT] = "tls.crt",
    [INIT_TLS_KEY] = "tls.key",
    [INIT_VAULT] = "vault.key",
    [INIT_DB] = "portcullis.db",
    [INIT_DB_WAL] = "portcullis.db-wal",
    [INIT_DB_SHM] = "portcullis.db-shm",
    [INIT_DB_JOURNAL] = "portcullis.db-journal",
    [INIT_AUDIT] = "audit.key",
    [INIT_JWT] = "api_jwt.key",
};

struct init_paths {
    char dir[PATH_MAX];
    char file[INIT__COUNT][PATH_MAX];
    bool created[INIT__COUNT]; /* made by this run: removed on failure */
    bool made_dir;
};

static int init_make_dir(const char *dir, struct init_paths *p)
{
    struct stat sb;
    size_t i;
    int n;

    if (mkdir(dir, 0700) == 0) {
        p->made_dir = true;
    } else if (errno != EEXIST) {
        return cli_error("cannot create directory %s: %s", dir,
                         strerror(errno));
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return cli_error("%s is not a directory", dir);
    }
    if (realpath(dir, p->dir) == NULL) {
        return cli_error("cannot resolve %s: %s", dir, strerror(errno));
    }
    for (i = 0; i < INIT__COUNT; i++) {
        n = snprintf(p->file[i], sizeof(p->file[i]), "%s/%s", p->dir,
                     init_names[i]);
        if (n < 0 || (size_t)n >= sizeof(p->file[i])) {
            return cli_error("directory path too long: %s", p->dir);
        }
        if (lstat(p->file[i], &sb) == 0) {
            return cli_error("%s already exists; not overwriting", p->file[i]);
        }
    }
    return CLI_EXIT_OK;
}

/* Writes portcullis.conf with the built-in defaults in def, but for the
 * ports and the listen address the command line may have changed. */
static int init_write_config(struct init_paths *p, const struct config *def,
                             const char *listen, bool listen_given,
                             const char *store_url, const char *extra)
{
    /* Tunnels listen where the other listeners do when --listen names an
     * address; otherwise on the built-in default (loopback). */
    const char *tunnel_listen = listen_given ? listen : def->tunnel_listen;
    char text[8192], tls[512], store[1024];
    int n, r;

    /* A PostgreSQL store is named by its URL (checked by the caller: no
     * password, no spaces); the SQLite file lies in the data directory. */
    if (store_url != NULL) {
        n = snprintf(store, sizeof(store), "url = %s\n", store_url);
    } else {
        n = snprintf(store, sizeof(store), "driver = sqlite\npath = %s\n",
                     init_names[INIT_DB]);
    }
    if (n < 0 || (size_t)n >= sizeof(store)) {
        return cli_error("[store] url too long");
    }

    /* Plain HTTP stays the development default on loopback (and what the
     * tests use); anywhere else `serve` would refuse it. */
    if (addr_is_loopback(listen)) {
        n = snprintf(tls, sizeof(tls),
                     "# Plain HTTP is allowed on a loopback address only. "
                     "For HTTPS with the\n"
                     "# self-signed certificate init made (its tls_fingerprint "
                     "was printed),\n"
                     "# remove the '#' before the next two lines.\n"
                     "# tls_cert = %s\n"
                     "# tls_key = %s\n",
                     init_names[INIT_TLS_CERT], init_names[INIT_TLS_KEY]);
    } else {
        n = snprintf(tls, sizeof(tls),
                     "# HTTPS with the self-signed certificate init made (its "
                     "tls_fingerprint\n"
                     "# was printed); replace both files for a certificate "
                     "of your own CA.\n"
                     "tls_cert = %s\n"
                     "tls_key = %s\n",
                     init_names[INIT_TLS_CERT], init_names[INIT_TLS_KEY]);
    }
    if (n < 0 || (size_t)n >= sizeof(tls)) {
        return cli_error("configuration too long");
    }
    n = snprintf(text, sizeof(text),
                 "# Portcullis configuration, written by `portcullis init`.\n"
                 "# Relative paths are relative to this file's directory.\n"
                 "\n"
                 "[server]\n"
                 "data_dir = .\n"
                 "log_level = %s\n"
                 "\n"
                 "[ssh]\n"
                 "listen = %s\n"
                 "port = %d\n"
                 "# Ed25519 (the key agents pin), and ECDSA and RSA for "
                 "clients without\n"
                 "# Ed25519. Algorithms, banner: see docs/operations.md.\n"
                 "host_key = %s\n"
                 "host_key_ecdsa = %s\n"
                 "host_key_rsa = %s\n"
                 "\n"
                 "[http]\n"
                 "listen = %s\n"
                 "port = %d\n"
                 "%s"
                 "\n"
                 "[store]\n"
                 "%s"
                 "\n"
                 "[vault]\n"
                 "key_file = %s\n"
                 "\n"
                 "[auth]\n"
                 "max_failures = %d\n"
                 "failure_window_seconds = %d\n"
                 "lockout_seconds = %d\n"
                 "failure_delay_ms = %d\n"
                 "\n"
                 "# Tunnels to agents' sides listen here, on ports from this "
                 "range.\n"
                 "[tunnel]\n"
                 "listen = %s\n"
                 "port_min = %d\n"
                 "port_max = %d\n"
                 "%s",
                 def->log_level, listen, def->ssh_port,
                 init_names[INIT_HOST_KEY], init_names[INIT_ECDSA_KEY],
                 init_names[INIT_RSA_KEY], listen, def->http_port, tls, store,
                 init_names[INIT_VAULT], def->max_failures,
                 def->failure_window_seconds, def->lockout_seconds,
                 def->failure_delay_ms, tunnel_listen, def->tunnel_port_min,
                 def->tunnel_port_max, extra != NULL ? extra : "");
    if (n < 0 || (size_t)n >= sizeof(text)) {
        return cli_error("configuration too long");
    }
    r = util_write_file_excl(p->file[INIT_CONF], text, (size_t)n, 0600);
    if (r != ERR_OK) {
        return cli_error("cannot write %s: %s", p->file[INIT_CONF], err_str(r));
    }
    p->created[INIT_CONF] = true;
    return CLI_EXIT_OK;
}

/* The host keys, in the order init_names lists them: key, .pub. */
static const struct {
    enum init_file file;
    enum hostkey_type type;
} init_host_keys[] = {
    {INIT_HOST_KEY, HOSTKEY_ED25519},
    {INIT_ECDSA_KEY, HOSTKEY_ECDSA},
    {INIT_RSA_KEY, HOSTKEY_RSA},
};

#define INIT_HOST_KEYS (sizeof(init_host_keys) / sizeof(init_host_keys[0]))

/* sshd's names for its host keys, in init_host_keys' order: what
 * --host-keys DIR looks for. */
static const char *const init_import_names[] = {
    "ssh_host_ed25519_key",
    "ssh_host_ecdsa_key",
    "ssh_host_rsa_key",
};

/* Makes the three host keys (0600) with their .pub lines; fp[i] gets the
 * fingerprint of init_host_keys[i], from the file just written, as the
 * server will load it: what the agents pin must be the key the server
 * presents. With from (--host-keys DIR), each key DIR holds under sshd's
 * name is adopted instead of generated (a bastion taking over from an
 * OpenSSH server keeps its host keys, so users see no key change); DIR
 * must hold at least one. */
static int init_host_key(struct init_paths *p, const char *from,
                         char fp[INIT_HOST_KEYS][HOSTKEY_FP_MAX + 1])
{
    enum init_file f;
    char src[PATH_MAX], why[PATH_MAX + 128];
    size_t i, found = 0;
    int r;

    for (i = 0; from != NULL && i < INIT_HOST_KEYS; i++) {
        if (snprintf(src, sizeof(src), "%s/%s", from, init_import_names[i]) >=
            (int)sizeof(src)) {
            return cli_error("--host-keys: path too long");
        }
        if (access(src, F_OK) == 0) {
            found++;
        }
    }
    if (from != NULL && found == 0) {
        return cli_error("--host-keys %s: no ssh_host_ed25519_key, "
                         "ssh_host_ecdsa_key or ssh_host_rsa_key there",
                         from);
    }
    for (i = 0; i < INIT_HOST_KEYS; i++) {
        f = init_host_keys[i].file;
        if (from != NULL) {
            (void)snprintf(src, sizeof(src), "%s/%s", from,
                           init_import_names[i]);
        }
        if (from != NULL && access(src, F_OK) == 0) {
            r = hostkey_import(src, p->file[f], init_host_keys[i].type, fp[i],
                               HOSTKEY_FP_MAX + 1, why, sizeof(why));
            if (r != ERR_OK) {
                return cli_error("cannot adopt the %s host key: %s",
                                 hostkey_type_name(init_host_keys[i].type),
                                 why);
            }
        } else {
            r = hostkey_create(p->file[f], init_host_keys[i].type, fp[i],
                               HOSTKEY_FP_MAX + 1);
            if (r != ERR_OK) {
                return cli_error("cannot make the %s host key %s: %s",
                                 hostkey_type_name(init_host_keys[i].type),
                                 p->file[f], err_str(r));
            }
        }
        /* the .pub name follows the key's in init_names */
        p->created[f] = true;
        p->created[f + 1] = true;
    }
    return CLI_EXIT_OK;
}

/* --- the HTTPS certificate ---------------------------------------------- */

/* A name a certificate can carry as a dNSName: letters, digits, '-' and
 * '.', not starting with either of the last two. */
static bool init_tls_dns_name(const char *s)
{
    size_t i;

    if (s[0] == '-' || s[0] == '.') {
        return false;
    }
    for (i = 0; s[i] != '\0'; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.') {
            return false;
        }
    }
    return i > 0 && i <= 253;
}

/*
 * The subjectAltName value: localhost and 127.0.0.1 always (the
 * development address, and what a browser on the machine itself uses),
 * plus the --listen address. A wildcard address (0.0.0.0, ::) names no
 * host, so the machine's host name goes in instead. A name that cannot be
 * a dNSName (an IPv6 zone, '_') is left out rather than failing init.
 */
static int init_tls_san(const char *listen, char *san, size_t sanlen)
{
    char lit[INET6_ADDRSTRLEN + 1], host[256] = "";
    const char *extra = NULL, *kind = "DNS";
    struct in_addr a4;
    struct in6_addr a6;
    size_t n;
    int w;

    if (listen != NULL && listen[0] != '\0') {
        /* Too long for an address literal: a name (never truncated into
         * something that parses as an address). */
        n = strlen(listen);
        lit[0] = '\0';
        if (listen[0] == '[' && n > 2 && listen[n - 1] == ']' &&
            n - 2 < sizeof(lit)) {
            memcpy(lit, listen + 1, n - 2);
            lit[n - 2] = '\0';
        } else if (n < sizeof(lit)) {
            memcpy(lit, listen, n + 1);
        }
        if (inet_pton(AF_INET, lit, &a4) == 1) {
            kind = "IP";
            extra = a4.s_addr == htonl(INADDR_ANY) ? NULL : lit;
            if (a4.s_addr == htonl(INADDR_LOOPBACK)) {
                extra = ""; /* already there */
            }
        } else if (inet_pton(AF_INET6, lit, &a6) == 1) {
            kind = "IP";
            extra = IN6_IS_ADDR_UNSPECIFIED(&a6) ? NULL : lit;
        } else {
            extra = strcasecmp(listen, "localhost") == 0 ? "" : listen;
        }
        if (extra == NULL && gethostname(host, sizeof(host) - 1) == 0) {
            kind = "DNS";
            extra = strcasecmp(host, "localhost") == 0 ? "" : host;
        }
        if (extra != NULL && strcmp(kind, "DNS") == 0 &&
            !init_tls_dns_name(extra)) {
            extra = NULL;
        }
    }
    if (extra != NULL && extra[0] != '\0') {
        w = snprintf(san, sanlen, "DNS:localhost,IP:127.0.0.1,%s:%s", kind,
                     extra);
    } else {
        w = snprintf(san, sanlen, "DNS:localhost,IP:127.0.0.1");
    }
    return w < 0 || (size_t)w >= sanlen ? ERR_TOO_LONG : ERR_OK;
}

static int init_tls_error(const char *what)
{
    const char *why = ERR_reason_error_string(ERR_peek_last_error());

    ERR_clear_error();
    return cli_error("cannot %s for the TLS certificate%s%s", what,
                     why != NULL ? ": " : "", why != NULL ? why : "");
}

/* "SHA256:AB:CD:..." of the certificate's DER encoding, the form browsers
 * and `openssl x509 -fingerprint -sha256` show. */
static int init_tls_fingerprint(X509 *x, char *fp, size_t fplen)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    size_t o;

    if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32 ||
        fplen < INIT_TLS_FP_MAX + 1) {
        return ERR_CRYPTO;
    }
    memcpy(fp, "SHA256:", 7);
    for (i = 0, o = 7; i < mdlen; i++) {
        if (i > 0) {
            fp[o++] = ':';
        }
        fp[o++] = hex[md[i] >> 4];
        fp[o++] = hex[md[i] & 0x0f];
    }
    fp[o] = '\0';
    return ERR_OK;
}

/* Writes a memory BIO's contents to path, which must not exist yet. */
static int init_write_bio(BIO *b, const char *path, unsigned mode)
{
    char *data = NULL;
    long len = BIO_get_mem_data(b, &data);
    int r;

    if (len <= 0 || data == NULL) {
        return cli_error("cannot encode %s", path);
    }
    if ((r = util_write_file_excl(path, data, (size_t)len, mode)) != ERR_OK) {
        return cli_error("cannot write %s: %s", path, err_str(r));
    }
    return CLI_EXIT_OK;
}

/*
 * Makes tls.key (0600) and the self-signed tls.crt (0644) for the HTTP
 * listener: X.509 v3, CN "portcullis", valid INIT_TLS_DAYS, an end-entity
 * certificate for TLS servers (CA:FALSE, so browsers accept it as a
 * server's once trusted), with the names of init_tls_san(). Its SHA-256
 * fingerprint goes to fp.
 */
static int init_tls_cert(struct init_paths *p, const char *listen, char *fp,
                         size_t fplen)
{
    char san[INIT_TLS_SAN_MAX];
    const struct {
        int nid;
        const char *value;
    } exts[] = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature"},
        {NID_ext_key_usage, "serverAuth"},
        /* the key identifier before the authority's, which copies it */
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"},
        {NID_subject_alt_name, san},
    };
    unsigned char serial[INIT_TLS_SERIAL_BYTES];
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    X509_NAME *name = NULL;
    X509_EXTENSION *ext = NULL;
    X509V3_CTX v3;
    BIGNUM *bn = NULL;
    BIO *kb = NULL, *cb = NULL;
    time_t now = time(NULL);
    size_t i;
    int rc = CLI_EXIT_FAIL;

    if (init_tls_san(listen, san, sizeof(san)) != ERR_OK) {
        cli_error("--listen address too long for the TLS certificate");
        goto out;
    }
    if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL) {
        init_tls_error("generate a P-256 key");
        goto out;
    }
    /* A random positive serial: two certificates made by two inits must
     * not look like one to a client that cached the first. */
    randombytes_buf(serial, sizeof(serial));
    serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x01);
    if ((x = X509_new()) == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
        (bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL ||
        X509_time_adj_ex(X509_getm_notBefore(x), 0, -INIT_TLS_BACKDATE_SECONDS,
                         &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), INIT_TLS_DAYS,
                         -INIT_TLS_BACKDATE_SECONDS, &now) == NULL ||
        X509_set_pubkey(x, key) != 1 ||
        (name = X509_get_subject_name(x)) == NULL ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)INIT_TLS_CN, -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(x, name) != 1) {
        init_tls_error("fill in the fields");
        goto out;
    }
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid, exts[i].value);
        if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
            init_tls_error("add an extension");
            goto out;
        }
        X509_EXTENSION_free(ext);
        ext = NULL;
    }
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        init_tls_error("sign");
        goto out;
    }
    /* secmem: the PEM of the private key is wiped when the BIO is freed */
    if ((kb = BIO_new(BIO_s_secmem())) == NULL ||
        PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        (cb = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(cb, x) != 1) {
        init_tls_error("encode the key or certificate");
        goto out;
    }
    if (init_write_bio(kb, p->file[INIT_TLS_KEY], 0600) != CLI_EXIT_OK) {
        goto out;
    }
    p->created[INIT_TLS_KEY] = true;
    if (init_write_bio(cb, p->file[INIT_TLS_CERT], 0644) != CLI_EXIT_OK) {
        goto out;
    }
    p->created[INIT_TLS_CERT] = true;
    /* The umask of the CLI is 077; a certificate may be read by anyone. */
    (void)chmod(p->file[INIT_TLS_CERT], 0644);
    if (init_tls_fingerprint(x, fp, fplen) != ERR_OK) {
        init_tls_error("compute the fingerprint");
        goto out;
    }
    rc = CLI_EXIT_OK;
out:
    X509_EXTENSION_free(ext);
    BIO_free(kb);
    BIO_free(cb);
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

/* Creates the database and the admin user; the password goes to pw. With
 * url, the store is that PostgreSQL database: it must exist (created with
 * the C collation, docs/store.md) and hold no Portcullis store yet. The
 * schema, /root and the admin are made in one transaction
 * (store_create_begin()), so a run that fails half way leaves the
 * database as it found it and can simply be repeated. The audit key
 * (audit.key beside the SQLite file; for a store on a server, in the data
 * directory: [store] audit_key's default) is written before the commit
 * and removed with the other files if the run fails. */
static int init_store(struct init_paths *p, const char *url, char *pw,
                      size_t pwlen)
{
    const char *path = url != NULL ? url : p->file[INIT_DB];
    struct store *st = NULL;
    struct store_user admin;
    struct store_site_role role;
    struct store_site root;
    char hash[STORE_HASH_MAX + 1] = "";
    int rc = CLI_EXIT_FAIL, r;

    memset(&admin, 0, sizeof(admin));
    /* None of these existed (init_make_dir); whatever SQLite leaves of
     * them on a failure is ours to remove. */
    if (url == NULL) {
        p->created[INIT_DB] = p->created[INIT_DB_WAL] = true;
        p->created[INIT_DB_SHM] = p->created[INIT_DB_JOURNAL] = true;
    }
    /* hashed before the store's transaction begins: argon2id takes a
     * while, and on PostgreSQL a transaction idle that long loses its
     * connection (db_set_session_defaults) */
    password_generate(pw, pwlen - 1);
    if ((r = password_hash(pw, hash, sizeof(hash))) != ERR_OK) {
        sodium_memzero(pw, pwlen);
        return cli_error("cannot hash the admin password: %s", err_str(r));
    }
    if ((r = store_create_begin(path, &st)) != ERR_OK) {
        sodium_memzero(hash, sizeof(hash));
        st = NULL;
        /* The driver has logged the database's reason (host, refusal,
         * missing database, a table in the way); the URL holds no
         * password (config_store_url_check). */
        if (url != NULL && r == ERR_EXISTS) {
            cli_error("the database %s already holds a Portcullis store; "
                      "not overwriting",
                      url);
        } else if (url != NULL) {
            cli_error("cannot open the PostgreSQL store %s: %s (is the "
                      "server running, the database created and empty?); "
                      "nothing was left in the database",
                      url, err_str(r));
        } else {
            cli_error("cannot create store %s: %s", path, err_str(r));
        }
        return CLI_EXIT_FAIL;
    }
    r = store_user_add(st, INIT_ADMIN_NAME, hash, false, &admin);
    if (r != ERR_OK) {
        cli_store_error(r, "user", INIT_ADMIN_NAME);
        goto out;
    }
    /* admin may manage everything, through the CLI and the REST API */
    memset(&role, 0, sizeof(role));
    memcpy(role.user_id, admin.id, sizeof(admin.id));
    role.role = SITE_ROLE_ADMIN;
    if ((r = store_site_get(st, "/root", &root)) == ERR_OK) {
        memcpy(role.site_id, root.id, sizeof(root.id));
        r = store_site_role_add(st, &role);
    }
    if (r != ERR_OK) {
        cli_error("cannot make admin an administrator: %s", err_str(r));
        goto out;
    }
    if (url != NULL && store_set_audit_key(st, p->file[INIT_AUDIT]) != ERR_OK) {
        cli_error("data directory path too long");
        goto out;
    }
    /* the audit log's key (store_audit.c), mode 0600 */
    if ((r = audit_key_create(st)) != ERR_OK) {
        cli_error("cannot create the audit key %s: %s", p->file[INIT_AUDIT],
                  err_str(r));
        goto out;
    }
    p->created[INIT_AUDIT] = true;
    rc = CLI_EXIT_OK;
out:
    r = store_create_end(st, rc == CLI_EXIT_OK ? ERR_OK : ERR_STORE);
    if (rc == CLI_EXIT_OK && r != ERR_OK) {
        rc = cli_error("cannot commit the new store %s: %s", path, err_str(r));
    }
    sodium_memzero(hash, sizeof(hash));
    sodium_memzero(&admin, sizeof(admin));
    return rc;
}

/* The secret of API tokens, web sessions and node credentials (`serve`
 * would make it at its first start): made here, so that a data directory
 * holds every key a second node copies (`node join --from`). */
static int init_jwt_key(struct init_paths *p)
{
    struct jwt_key *k = NULL;
    int r;

    /* the written configuration keeps [http] jwt_secret's default */
    if ((r = jwt_key_load(p->file[INIT_JWT], true, &k)) != ERR_OK) {
        return cli_error("cannot create the API key %s: %s", p->file[INIT_JWT],
                         err_str(r));
    }
    p->created[INIT_JWT] = true;
    jwt_key_free(k);
    return CLI_EXIT_OK;
}

/* A failed run removes what it made (p may be NULL). */
static void init_undo(const struct init_paths *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < INIT__COUNT; i++) {
        if (p->created[i]) {
            (void)unlink(p->file[i]);
        }
    }
    if (p->made_dir) {
        (void)rmdir(p->dir);
    }
}

static int init_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *dir = NULL, *listen = NULL, *keys = NULL, *url = NULL;
    const char *pos[CLI_MAX_POS];
    struct config def, cfg;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--dir", &dir),
        CLI_OPT_INT("--ssh-port", &def.ssh_port, 0, 65535),
        CLI_OPT_INT("--http-port", &def.http_port, 0, 65535),
        CLI_OPT_STR("--listen", &listen),
        CLI_OPT_STR("--host-keys", &keys),
        CLI_OPT_STR("--store-url", &url),
        CLI_OPT_END,
    };
    struct init_paths *p = NULL;
    char why[512], fp[INIT_HOST_KEYS][HOSTKEY_FP_MAX + 1];
    char tls_fp[INIT_TLS_FP_MAX + 1];
    char pw[INIT_ADMIN_PASSWORD_LEN + 1] = "";
    size_t i;
    int rc, r;

    memset(&cfg, 0, sizeof(cfg));
    if (config_defaults(&def, "/") != ERR_OK) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        goto out;
    }
    if (dir == NULL) {
        rc = cli_usage(ctx, "missing --dir DIR");
        goto out;
    }
    /* It goes into the file verbatim: no spaces, comments or line breaks
     * that could smuggle in other keys. */
    if (listen != NULL && !admin_host_valid(listen)) {
        rc = cli_usage(ctx, "--listen needs an address or host name");
        goto out;
    }
    /* Checked before anything is written: a URL with a password never
     * reaches the configuration file (or, being refused, any output). */
    if (url != NULL &&
        config_store_url_check(url, why, sizeof(why)) != ERR_OK) {
        rc = cli_usage(ctx, "%s", why);
        goto out;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        rc = cli_error("%s", err_str(ERR_NOMEM));
        goto out;
    }
    /* Nothing is created before every name is known to be free. */
    if ((rc = init_make_dir(dir, p)) != CLI_EXIT_OK ||
        (rc = init_write_config(p, &def,
                                listen != NULL ? listen : def.ssh_listen,
                                listen != NULL, url, NULL)) != CLI_EXIT_OK) {
        goto out;
    }
    /* Read it back: a file `serve` would refuse fails the run here. */
    if ((r = config_load(p->file[INIT_CONF], &cfg, why, sizeof(why))) !=
        ERR_OK) {
        rc = cli_error("%s", why);
        goto out;
    }
    if ((rc = init_host_key(p, keys, fp)) != CLI_EXIT_OK ||
        (rc = init_tls_cert(p, listen, tls_fp, sizeof(tls_fp))) !=
            CLI_EXIT_OK) {
        goto out;
    }
    if ((r = vault_create_key(p->file[INIT_VAULT])) != ERR_OK) {
        rc = cli_error("cannot create vault key %s: %s", p->file[INIT_VAULT],
                       err_str(r));
        goto out;
    }
    p->created[INIT_VAULT] = true;
    if ((rc = init_jwt_key(p)) != CLI_EXIT_OK ||
        (rc = init_store(p, url, pw, sizeof(pw))) != CLI_EXIT_OK) {
        goto out;
    }
    printf("config=%s\n", p->file[INIT_CONF]);
    printf("admin_user=%s\n", INIT_ADMIN_NAME);
    printf("admin_password=%s\n", pw);
    /* fingerprint= is the Ed25519 key's, the one agents pin */
    printf("fingerprint=%s\n", fp[0]);
    for (i = 1; i < INIT_HOST_KEYS; i++) {
        printf("fingerprint_%s=%s\n", hostkey_type_name(init_host_keys[i].type),
               fp[i]);
    }
    printf("tls_fingerprint=%s\n", tls_fp);
out:
    sodium_memzero(pw, sizeof(pw));
    if (rc != CLI_EXIT_OK) {
        init_undo(p);
    }
    config_free(&def);
    config_free(&cfg);
    free(p);
    return rc;
}

/* --- node join ---------------------------------------------------------- */

/*
 * `portcullis node join`: a second (third, ...) node of a cluster. The
 * store is the cluster's PostgreSQL database, which the first node's
 * `init --store-url` made; the keys every node shares come from a
 * directory the operator copied from an existing node (over ssh, say):
 * the vault key (it opens the logins sealed in the database, so it never
 * travels through the database), the API key (tokens, web sessions, node
 * credentials), the audit key, the TLS certificate and key (node links
 * pin it) and the SSH host keys (users' known_hosts and agents' pinned
 * fingerprint fit whichever node answers). Everything is checked before
 * a file is written: the store must be reachable and hold a Portcullis
 * store, the keys must be owner-only files of the right shape, and the
 * audit key must verify the store's audit log, so keys of another cluster
 * are refused. A failed run removes what it made, as init does.
 */

/* Shared files copied from --from besides the host keys (init_host_key
 * adopts those), with the mode each gets. */
static const struct {
    enum init_file file;
    unsigned mode;
    bool secret;
} join_files[] = {
    {INIT_VAULT, 0600, true},     {INIT_JWT, 0600, true},
    {INIT_AUDIT, 0600, true},     {INIT_TLS_KEY, 0600, true},
    {INIT_TLS_CERT, 0644, false},
};

#define JOIN_FILES (sizeof(join_files) / sizeof(join_files[0]))
#define JOIN_FILE_MAX (64 * 1024)

/* from/name must be a regular file, owner-only when secret. */
static int join_check_file(const char *from, const char *name, bool secret,
                           char *path, size_t pathlen)
{
    struct stat sb;

    if (snprintf(path, pathlen, "%s/%s", from, name) >= (int)pathlen) {
        return cli_error("--from: path too long");
    }
    if (lstat(path, &sb) != 0) {
        return cli_error("--from %s holds no %s: copy it from a node of the "
                         "cluster (docs/operations.md, \"Cluster\")",
                         from, name);
    }
    if (!S_ISREG(sb.st_mode)) {
        return cli_error("%s is not a regular file", path);
    }
    if (secret && (sb.st_mode & 077) != 0) {
        return cli_error("%s can be read by group or others: chmod 600 it "
                         "(and check who read it)",
                         path);
    }
    return CLI_EXIT_OK;
}

static int join_copy(const char *src, const char *dst, unsigned mode)
{
    uint8_t *data = NULL;
    size_t len = 0;
    int r;

    if ((r = util_read_file(src, JOIN_FILE_MAX, &data, &len)) != ERR_OK) {
        return cli_error("cannot read %s: %s", src, err_str(r));
    }
    r = util_write_file_excl(dst, data, len, mode);
    sodium_memzero(data, len);
    free(data);
    if (r != ERR_OK) {
        return cli_error("cannot write %s: %s", dst, err_str(r));
    }
    (void)chmod(dst, mode); /* the CLI's umask is 077 */
    return CLI_EXIT_OK;
}

/* The certificate's fingerprint as init prints it. */
static int join_tls_fingerprint(const char *path, char *fp, size_t fplen)
{
    BIO *b = BIO_new_file(path, "r");
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    int rc = CLI_EXIT_OK;

    if (x == NULL || init_tls_fingerprint(x, fp, fplen) != ERR_OK) {
        rc = cli_error("%s is not a PEM certificate", path);
    }
    X509_free(x);
    BIO_free(b);
    return rc;
}

/* The store: reachable, a Portcullis store, and its audit log verified by
 * the copied audit key. */
static int join_check_store(const char *url, const char *audit_key)
{
    struct audit_verify_result *res = NULL;
    struct store *st = NULL;
    int rc = CLI_EXIT_FAIL, r;

    if ((r = store_open_existing(url, &st)) == ERR_NOT_FOUND) {
        return cli_error("the database %s holds no Portcullis store: make the "
                         "first node with `portcullis init --store-url`",
                         url);
    }
    if (r != ERR_OK) {
        return cli_error("cannot open the PostgreSQL store %s: %s (is the "
                         "server running and reachable from here?)",
                         url, err_str(r));
    }
    if ((res = calloc(1, sizeof(*res))) == NULL) {
        rc = cli_error("%s", err_str(ERR_NOMEM));
        goto out;
    }
    r = audit_verify_full(st, audit_key, res);
    if (r == ERR_CRYPTO) {
        rc = cli_error("%s does not verify the store's audit log (%s): it is "
                       "not this cluster's audit key",
                       audit_key, res->why);
        goto out;
    }
    if (r != ERR_OK) {
        rc = cli_error("cannot check the audit key %s against the store: %s",
                       audit_key, res->why[0] != '\0' ? res->why : err_str(r));
        goto out;
    }
    rc = CLI_EXIT_OK;
out:
    free(res);
    store_close(st);
    return rc;
}

static int node_join_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *dir = NULL, *listen = NULL, *url = NULL, *from = NULL;
    const char *name = NULL;
    const char *pos[CLI_MAX_POS];
    int proxy_port = 3128;
    struct config def, cfg;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--dir", &dir),
        CLI_OPT_STR("--store-url", &url),
        CLI_OPT_STR("--from", &from),
        CLI_OPT_STR("--name", &name),
        CLI_OPT_INT("--ssh-port", &def.ssh_port, 0, 65535),
        CLI_OPT_INT("--http-port", &def.http_port, 0, 65535),
        CLI_OPT_INT("--proxy-port", &proxy_port, 1, 65535),
        CLI_OPT_STR("--listen", &listen),
        CLI_OPT_END,
    };
    struct init_paths *p = NULL;
    struct stat sb;
    char why[512], src[PATH_MAX], extra[1024];
    char fp[INIT_HOST_KEYS][HOSTKEY_FP_MAX + 1];
    char tls_fp[INIT_TLS_FP_MAX + 1];
    const char *addr;
    size_t i;
    int rc, r, n;

    memset(&cfg, 0, sizeof(cfg));
    if (config_defaults(&def, "/") != ERR_OK) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        goto out;
    }
    if (dir == NULL || url == NULL || from == NULL) {
        rc = cli_usage(ctx, "node join needs --dir DIR, --store-url "
                            "postgresql://... and --from DIR");
        goto out;
    }
    /* A SQLite file is one node's own: there is no cluster to join. */
    if (strncmp(url, "postgresql://", 13) != 0 &&
        strncmp(url, "postgres://", 11) != 0) {
        rc = cli_usage(ctx, "node join needs the cluster's PostgreSQL store "
                            "(--store-url postgresql://...); a SQLite store "
                            "belongs to one node and cannot be shared");
        goto out;
    }
    if (config_store_url_check(url, why, sizeof(why)) != ERR_OK) {
        rc = cli_usage(ctx, "%s", why);
        goto out;
    }
    if ((listen != NULL && !admin_host_valid(listen)) ||
        (name != NULL && (!admin_host_valid(name) || strlen(name) > 64))) {
        rc = cli_usage(ctx, "--listen needs an address or host name, --name "
                            "letters, digits, '-' and '.'");
        goto out;
    }
    if (stat(from, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        rc = cli_error("--from %s is not a directory", from);
        goto out;
    }
    /* Every check before anything is written: the files, then the store. */
    for (i = 0; i < JOIN_FILES; i++) {
        if ((rc = join_check_file(from, init_names[join_files[i].file],
                                  join_files[i].secret, src, sizeof(src))) !=
            CLI_EXIT_OK) {
            goto out;
        }
    }
    if ((rc = join_check_file(from, init_names[INIT_HOST_KEY], true, src,
                              sizeof(src))) != CLI_EXIT_OK ||
        (rc = join_check_file(from, init_names[INIT_AUDIT], true, src,
                              sizeof(src))) != CLI_EXIT_OK ||
        (rc = join_check_store(url, src)) != CLI_EXIT_OK) {
        goto out;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        rc = cli_error("%s", err_str(ERR_NOMEM));
        goto out;
    }
    addr = listen != NULL ? listen : def.ssh_listen;
    n = snprintf(extra, sizeof(extra),
                 "\n"
                 "# This node in the cluster (docs/operations.md, "
                 "\"Cluster\").\n"
                 "[node]\n"
                 "%s%s%s"
                 "\n"
                 "# The link other nodes reach this node's agents through "
                 "(TLS with the\n"
                 "# shared certificate and a node credential); nothing else "
                 "is proxied.\n"
                 "[http_proxy]\n"
                 "enabled = true\n"
                 "listen = %s\n"
                 "port = %d\n",
                 name != NULL ? "name = " : "# name = (the host name)",
                 name != NULL ? name : "", "\n", addr, proxy_port);
    if (n < 0 || (size_t)n >= sizeof(extra)) {
        rc = cli_error("configuration too long");
        goto out;
    }
    if ((rc = init_make_dir(dir, p)) != CLI_EXIT_OK ||
        (rc = init_write_config(p, &def, addr, listen != NULL, url, extra)) !=
            CLI_EXIT_OK) {
        goto out;
    }
    if ((r = config_load(p->file[INIT_CONF], &cfg, why, sizeof(why))) !=
        ERR_OK) {
        rc = cli_error("%s", why);
        goto out;
    }
    for (i = 0; i < JOIN_FILES; i++) {
        enum init_file f = join_files[i].file;

        (void)snprintf(src, sizeof(src), "%s/%s", from, init_names[f]);
        if ((rc = join_copy(src, p->file[f], join_files[i].mode)) !=
            CLI_EXIT_OK) {
            goto out;
        }
        p->created[f] = true;
    }
    /* loaded as serve will load them: a file of the wrong shape fails here */
    {
        struct vault *v = NULL;

        if ((r = vault_load(p->file[INIT_VAULT], &v)) != ERR_OK) {
            rc = cli_error("%s/%s is not a vault key: %s", from,
                           init_names[INIT_VAULT], err_str(r));
            goto out;
        }
        vault_free(v);
    }
    if ((rc = init_jwt_key(p)) != CLI_EXIT_OK ||
        (rc = join_tls_fingerprint(p->file[INIT_TLS_CERT], tls_fp,
                                   sizeof(tls_fp))) != CLI_EXIT_OK ||
        (rc = init_host_key(p, from, fp)) != CLI_EXIT_OK) {
        goto out;
    }
    printf("config=%s\n", p->file[INIT_CONF]);
    printf("store=%s\n", url);
    printf("fingerprint=%s\n", fp[0]);
    for (i = 1; i < INIT_HOST_KEYS; i++) {
        printf("fingerprint_%s=%s\n", hostkey_type_name(init_host_keys[i].type),
               fp[i]);
    }
    printf("tls_fingerprint=%s\n", tls_fp);
out:
    if (rc != CLI_EXIT_OK) {
        init_undo(p);
    }
    config_free(&def);
    config_free(&cfg);
    free(p);
    return rc;
}

const struct cli_cmd cli_node_join = {
    .name = "join",
    .synopsis = "node join --dir DIR --store-url postgresql://... --from DIR\n"
                "     [--name NAME] [--listen ADDR] [--ssh-port N] "
                "[--http-port N]\n"
                "     [--proxy-port N]",
    .summary = "Make the data directory of one more node of a cluster.",
    .details =
        "Options:\n"
        "  --dir DIR         the new node's data directory (created with "
        "mode 0700)\n"
        "  --store-url URL   the cluster's PostgreSQL store, as the first "
        "node's\n"
        "                    [store] url (no password in it)\n"
        "  --from DIR        a copy of the shared keys of a node of the "
        "cluster:\n"
        "                    vault.key, api_jwt.key, audit.key, tls.crt, "
        "tls.key and\n"
        "                    ssh_host_*_key (the secret ones mode 0600); "
        "copy them\n"
        "                    over ssh and delete the copy after the join\n"
        "  --name NAME       this node's name in `node list` (default: the "
        "host name)\n"
        "  --listen ADDR     address the SSH, HTTP, tunnel and node-link "
        "listeners\n"
        "                    bind (default 127.0.0.1)\n"
        "  --ssh-port N, --http-port N  as init (2203, 8080)\n"
        "  --proxy-port N    the node link other nodes reach this node's "
        "agents\n"
        "                    through ([http_proxy], default 3128)\n"
        "\n"
        "Refuses before writing anything: a store that is not PostgreSQL, "
        "cannot be\nreached or holds no Portcullis store; a missing key, "
        "one others can read,\nor an audit key that does not verify the "
        "store's audit log (another\ncluster's). Prints config=, store=, "
        "the host key fingerprints (the same\nas the other nodes') and "
        "tls_fingerprint=.\n",
    .run = node_join_run,
};

static int serve_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    char why[512];
    int rc, r, lvl;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_load_config(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    /* Before anything is bound: a refused configuration never listens,
     * not even on the SSH port. */
    if (addr_check_plain_http(&ctx->cfg, why, sizeof(why)) != ERR_OK) {
        return cli_error("%s", why);
    }
    if (getenv("PORTCULLIS_LOG_LEVEL") == NULL &&
        (lvl = log_level_parse(ctx->cfg.log_level)) >= 0) {
        log_set_level((enum log_level)lvl);
    }
    /* daemon_run() has logged why it could not start. */
    r = daemon_run(&ctx->cfg);
    return r == ERR_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

const struct cli_cmd cli_init = {
    .name = "init",
    .synopsis =
        "init --dir DIR [--ssh-port N] [--http-port N] [--listen ADDR]\n"
        "     [--host-keys DIR] [--store-url postgresql://...]",
    .summary = "Create a data directory: config, keys, database, admin user.",
    .details =
        "Options:\n"
        "  --dir DIR        the data directory (created with mode 0700 if "
        "missing)\n"
        "  --ssh-port N     SSH proxy port (default 2203)\n"
        "  --http-port N    HTTP port (default 8080)\n"
        "  --listen ADDR    address the SSH, HTTP and tunnel listeners bind\n"
        "                   (default 127.0.0.1)\n"
        "  --host-keys DIR  adopt the host keys an OpenSSH server keeps in "
        "DIR\n"
        "                   (ssh_host_ed25519_key, ssh_host_ecdsa_key, "
        "ssh_host_rsa_key;\n"
        "                   e.g. /etc/ssh) instead of making new ones, so "
        "users see\n"
        "                   no host key change; a type DIR lacks is made "
        "new. Keys\n"
        "                   must be unencrypted, readable by their owner "
        "only,\n"
        "                   ECDSA P-256, RSA of at least 2048 bits.\n"
        "  --store-url URL  keep the store in this PostgreSQL database "
        "([store] url)\n"
        "                   instead of portcullis.db; it must exist "
        "(created with\n"
        "                   --locale=C) and hold no Portcullis store "
        "yet. No password\n"
        "                   in the URL: use passfile= or PGPASSFILE. "
        "audit.key is\n"
        "                   made in DIR ([store] audit_key's default).\n"
        "\n"
        "Prints config=, admin_user=, admin_password= (shown only this once),\n"
        "fingerprint= (the Ed25519 SSH host key's SHA256 fingerprint, as "
        "`ssh-keygen\n-lf` prints it; agents pin it), fingerprint_ecdsa= "
        "and fingerprint_rsa=\n(the other two host keys, for clients "
        "without Ed25519) and "
        "tls_fingerprint=\n(the SHA-256 of the self-signed HTTPS "
        "certificate tls.crt) lines.\n"
        "HTTPS is on in the written config unless the listen address is "
        "loopback.\nRefuses to overwrite an existing file.\n",
    .run = init_run,
};

const struct cli_cmd cli_serve = {
    .name = "serve",
    .synopsis = "-c CONF serve",
    .summary = "Run the access server until SIGTERM or SIGINT.",
    .run = serve_run,
};
