//! `protected-endpoint serve --help`: the operator's manual, around clap's list of flags
//! (`-h` shows the list alone). A test (`cli/tests/it/serve_settings.rs`) holds it to naming
//! every flag and every environment variable.

/// Above the flags.
pub(crate) const ABOUT: &str = "\
Serve the token authority: the platform-compatible token management API, RFC 7662 token
introspection, the revocation stream and the token console, over a store of your choice, on a
hardened HTTP front.

Protected services verify tokens against it (a RemoteVerifier pointed at /oauth2/introspect,
which follows /oauth2/revocations, so a deleted token is refused everywhere at once). People and
scripts manage tokens with `protected-endpoint token … --endpoint URL`, the platform's SDK and
CLI (`bentoml cloud login --endpoint URL --api-token TOKEN`), or the console in a browser.

Every flag but --check is also an environment variable and a config-file key: see SETTINGS
below the flags.";

/// Below the flags.
pub(crate) const MANUAL: &str = "\
ROUTES
  Credentials: `Authorization: Bearer TOKEN`, or `X-YATAI-API-TOKEN: TOKEN` (the SDK's header).
  GET    /api/v1/auth/current, /api/v1/current_org   any valid token: the user, the organization
  GET    /api/v1/api_tokens?start=0&count=100&search=S   read_organization: a page of tokens
  POST   /api/v1/api_tokens                   write_organization: create (the secret is in this
                                              answer only); a token grants only what it holds
  GET    /api/v1/api_tokens/UID               read_organization: one token
  DELETE /api/v1/api_tokens/UID               write_organization: delete it and every token it
                                              created
  POST   /api/v1/api_tokens/UID/disable, …/enable, …/reroll   write_organization
  GET    /api/v1/protected_deployments        read_organization: the deployments services named
  POST   /oauth2/introspect                   scope `introspect`: RFC 7662 token introspection
  GET    /oauth2/revocations                  scope `introspect`: server-sent revocation events
  GET    /console                             the token console, in a browser (sign in once with
                                              a read_organization token; a session cookie)
  GET    /healthz                             nothing: 200 while the process answers (liveness)
  GET    /readyz                              nothing: 200 ready, or 503 while the tokens in
                                              memory may be stale (readiness); the details with
                                              a read_organization token
  GET    /metrics                             nothing, with --metrics: Prometheus text

WHERE THE TOKENS ARE KEPT
  --data tokens.db             a SQLite database, created on the first start. One process at a
                               time: it holds tokens.db.lock, and a second start on the same
                               file stops with an error.
  --data tokens.json           a JSON data file, rewritten whole on each change: small sets.
  --database-url sqlite:PATH   the same SQLite database, named as a URL.
  --database-url postgres://user:password@host/db
                               PostgreSQL: any number of replicas share one database behind one
                               load balancer; each hears the others' changes at once
                               (LISTEN/NOTIFY) and fails closed (503, not ready) while it cannot.
  neither                      in memory: every token is lost on exit (the start says so).
  Every change is written to the store before it is acknowledged: it survives kill -9.
  --import FILE loads a token file, or an old JSON data file, at start (uids stored already are
  skipped), e.g. to move from a token file to an authority.

THE FIRST START AND THE ADMIN TOKEN
  The first start on an empty store creates an admin token (every scope) and prints it once on
  stdout, as `token: pe_…`; with --admin-token-file FILE it writes it to that new file instead
  (mode 0600; under a service manager, stdout may end up in a journal: prefer the file). Keep
  it: the store keeps only its hash. Later starts mint none and leave the file alone. Then:
    export PROTECTED_ENDPOINT_API_TOKEN=pe_…
    protected-endpoint token create --endpoint http://127.0.0.1:3001 --name ci --scope api
  Locked out (no live token with write_organization: deleted, expired, disabled, lost)? The
  start warns. Restart once with --mint-admin: a new admin token is printed (or written to
  --admin-token-file) the same way, and the audit log records it. It is never reachable over
  the network.

THE FAILED-GUESS THROTTLE
  A client that sends 10 bad tokens in a row gets 429 Too Many Requests (with Retry-After) for
  each further guess sooner than a second after its last, before any lookup. Clients are told
  apart by IP address. Behind a reverse proxy every client has the proxy's address: name the
  header the proxy sets with --client-ip-header (only if it always sets it). --no-throttle
  turns the throttle off. Each token may also carry a rate limit of its own (token create
  --rate-limit 100/1m) and a quota (token create --quota 1000/day, changed with token quota
  UID …), which the services that verify it enforce; the listing shows each quota with what
  is left of it.
  Replicas of one authority (one --database-url) count each client's failed guesses together
  with --redis-url redis://10.0.0.7:6379 (Redis or Valkey; the URL may hold a password: put it
  in PROTECTED_ENDPOINT_REDIS_URL or the config file, it is never printed): a scanner that
  spreads its guesses over the replicas is throttled as one client. Redis slow or down: a
  guess waits at most --redis-wait (50ms), then --redis-fallback decides: local (default; each
  replica counts on its own) or refuse (the client waits a whole second before its next try).

LIMITS AND TIMEOUTS
  HTTP/1.1 and HTTP/2 (h2c) on one port. A connection that has not sent a whole request head
  within --header-read-timeout (10s) is closed, and so is one idle for --idle-timeout (60s); at
  most --max-connections (8192) are served at once, and more wait to be accepted: every
  service following the revocation stream holds two (the stream and its introspection
  connection), so the default fits 4 000 services; keep it below the open-file limit
  (ulimit -n). No TLS: put the authority behind a TLS-terminating proxy or load balancer.

METRICS
  --metrics serves Prometheus text at GET /metrics, without a token: decisions of the
  authority's token checks, introspections by result, tokens held, created and deleted. The
  page holds counts only, never a token or an address; still, bind privately or keep /metrics
  from the outside.

LOGS
  stdout: `token: …` (a first start, or --mint-admin) and `listening on http://IP:PORT` once it
  serves. stderr: start-up notes, warnings and the audit log (target protected_endpoint::audit:
  who created, deleted, disabled, enabled or rerolled which token, every mint and every change
  refused; never a secret). RUST_LOG sets what is logged (default `info`), e.g.
  RUST_LOG=warn,protected_endpoint::audit=info.

SIGNALS
  SIGINT (Ctrl-C) or SIGTERM: the authority stops accepting, ends the revocation streams (their
  listeners reconnect elsewhere), lets the requests in flight finish (at most 10 s) and exits
  with status 0.

SETTINGS: FLAGS, ENVIRONMENT, CONFIG FILE
  Each flag is also an environment variable (PROTECTED_ENDPOINT_ and the flag's name in
  capitals, - as _) and a key of the TOML file that --config FILE or PROTECTED_ENDPOINT_CONFIG
  names (the flag's name without --; one flat table). For each setting, the command line beats
  the environment, which beats the file, which beats the default. Of --data and --database-url,
  or of --no-throttle and --client-ip-header, the one given in the higher place wins and the
  other is dropped; both in one place is an error.
    flag                    environment variable                    in the file
    --config FILE           PROTECTED_ENDPOINT_CONFIG               -
    --addr IP:PORT          PROTECTED_ENDPOINT_ADDR                 addr = \"0.0.0.0:3001\"
    --data FILE             PROTECTED_ENDPOINT_DATA                 data = \"tokens.db\"
    --database-url URL      PROTECTED_ENDPOINT_DATABASE_URL         database-url = \"postgres://…\"
    --import FILE           PROTECTED_ENDPOINT_IMPORT               import = \"tokens.json\"
    --mint-admin            PROTECTED_ENDPOINT_MINT_ADMIN           mint-admin = true
    --admin-token-file FILE PROTECTED_ENDPOINT_ADMIN_TOKEN_FILE     admin-token-file = \"admin\"
    --client-ip-header H    PROTECTED_ENDPOINT_CLIENT_IP_HEADER     client-ip-header = \"x-real-ip\"
    --no-throttle           PROTECTED_ENDPOINT_NO_THROTTLE          no-throttle = true
    --redis-url URL         PROTECTED_ENDPOINT_REDIS_URL            redis-url = \"redis://10.0.0.7\"
    --redis-wait D          PROTECTED_ENDPOINT_REDIS_WAIT           redis-wait = \"20ms\"
    --redis-fallback F      PROTECTED_ENDPOINT_REDIS_FALLBACK       redis-fallback = \"refuse\"
    --header-read-timeout D PROTECTED_ENDPOINT_HEADER_READ_TIMEOUT  header-read-timeout = \"10s\"
    --idle-timeout D        PROTECTED_ENDPOINT_IDLE_TIMEOUT         idle-timeout = \"1m\"
    --max-connections N     PROTECTED_ENDPOINT_MAX_CONNECTIONS      max-connections = 4096
    --metrics               PROTECTED_ENDPOINT_METRICS              metrics = true
  Flags without a value are true or false in the file, and 1, 0, true or false in the
  environment (where 0 or false turns off what the file turned on). Durations are a number of
  seconds or a number and a unit (s, m, h, d). A variable set to the empty string counts as not
  set. Relative paths are relative to the working directory, in the file too. The plain
  DATABASE_URL is not read: use PROTECTED_ENDPOINT_DATABASE_URL. RUST_LOG: see LOGS.
  Every value given is checked, even one that a higher place overrides. A key the file should
  not have, a bad value, or two settings that exclude each other in one place stop the start
  with a message naming them, before anything is opened or written.
  --check (on the command line only) reads and checks the settings as a start would, prints
  each with where it came from, as a config file, and exits: try a new config file before a
  restart with `protected-endpoint serve --config new.toml --check`.
  A config file, e.g. /etc/protected-endpoint/serve.toml:
    addr = \"0.0.0.0:3001\"
    data = \"/var/lib/protected-endpoint/tokens.db\"
    admin-token-file = \"/var/lib/protected-endpoint/admin-token\"
    client-ip-header = \"x-forwarded-for\"
    header-read-timeout = \"10s\"
    idle-timeout = \"1m\"
    max-connections = 4096
    metrics = true

EXIT STATUS
  0  stopped by SIGINT or SIGTERM, after a graceful shutdown; or --check found good settings
  1  the start failed: the store cannot be opened (a SQLite file another process holds, an
     unreachable database), the address is taken, the admin token file exists, an import file
     cannot be read; or the server failed
  2  bad settings: a flag, an environment variable, or the config file or one of its keys or
     values, --redis-wait or --redis-fallback without --redis-url (nothing was opened or
     written)";
