//! `protected-endpoint authz --help`: the operator's manual, around clap's list of flags
//! (`-h` shows the list alone). A test (`cli/tests/it/authz_cmd.rs`) holds it to naming every
//! flag and every environment variable.

/// Above the flags.
pub(crate) const ABOUT: &str = "\
Answer the external-authorization calls of nginx (auth_request), Caddy (forward_auth),
Traefik (forwardAuth) and Envoy (ext_authz over HTTP or gRPC; also Istio's CUSTOM action and
the Gateway API's ExternalAuth), with the same decisions as a protected Rust service: the
proxy asks with the request's head, this answers allow (200 and the token's identity in
headers) or the refusal, and the proxy forwards or refuses.

Tokens come from a token file (--tokens) or a token authority (--authority, the address of
`protected-endpoint serve`). Every flag but --check is also an environment variable and a
config-file key: see SETTINGS below the flags.";

/// Below the flags.
pub(crate) const MANUAL: &str = "\
ROUTES (one port, HTTP/1.1 and h2c)
  /auth/nginx         nginx auth_request: the original request in X-Original-Method and
                      X-Original-URI. Allow: 200, empty body, identity headers. Refused: 401
                      (challenge) or 403; a 400, 429 or 503 is answered 403 with
                      X-Protected-Endpoint-Status (nginx turns any other status into a 500):
                      the proxies guide's configuration gives the client the real one.
  /auth/forward       Caddy forward_auth, Traefik forwardAuth: X-Forwarded-Method, -Uri,
                      -Host, -Proto. Allow: 200 and identity headers; refused: the layer's
                      answer as it is (400, 401, 403, 429 with Retry-After, 503).
  /auth/envoy/…       Envoy's HTTP ext_authz (path_prefix /auth/envoy): allow is exactly 200
                      with identity headers and x-envoy-auth-headers-to-remove: authorization.
  gRPC                envoy.service.auth.v3.Authorization/Check, told apart by its content type
                      (application/grpc over HTTP/2) on the same port: OK with ok_response, or
                      the layer's code (16, 7, 8, 14) with denied_response; a deployment from
                      the route's context_extensions (key `deployment`).
  /healthz, /readyz   200 while the process answers.
  /metrics            with --metrics: Prometheus text, no token.
  The identity headers: X-Protected-Endpoint-Uid, -Name (percent-encoded), -Scopes
  (space-separated), -Deployments (`*` or the names). An allow carries all four, so a proxy
  copying them onto the upstream request replaces any copy a client sent.

WHOM TO BELIEVE
  Only the peers --trust-forwarded names (the proxies' addresses) describe a request: their
  X-Original-*/X-Forwarded-* headers, the client's address in X-Forwarded-For (whom the
  failed-guess throttle counts) and the deployment header. Anyone else is judged as the
  request it is: its own method, path and address. Without --trust-forwarded the start warns.

THE DEPLOYMENT
  --deployment NAME protects one deployment. With --deployment-header
  x-protected-endpoint-deployment, a trusted proxy names it per route instead (the proxy must
  SET the header, replacing any copy from the client); with the header and no --deployment, a
  request naming none is refused (403), never \"any deployment\". Envoy over gRPC: the route's
  context_extensions `deployment`.

FAIL CLOSED
  A verifier that cannot answer (the authority unreachable) is a refusal: 503 (gRPC 14
  UNAVAILABLE, as a denied_response), never an allow. With the decision service itself down,
  nginx answers 500, Caddy 502, Traefik 500, Envoy 403 (keep failure_mode_allow false).

TOKENS
  --tokens tokens.json           a token file, reloaded when it changes.
  --authority http://127.0.0.1:3001
                                 a token authority: introspection cached for --cache-ttl (10s),
                                 its revocation stream followed (a deleted token is refused at
                                 once).
  Following an authority, it reports how often each token was used here (its cache hits
  included; not the calls a rate limit or quota refused) every --usage-interval (5s; `off`:
  never), so the authority's listing and console count the whole fleet; the last counts are
  sent when it stops.
  With --authority, this service shows the authority a service token of its own (scope
  `introspect`): set PROTECTED_ENDPOINT_SERVICE_TOKEN, or give --service-token-file FILE, or
  `service-token = \"…\"` in the config file. Never a flag: the command line stays in shell
  history and shows in `ps`.
  Per-token rate limits (a token created with --rate-limit 100/1m) are enforced here: 429
  rate_limited; and quotas (--quota 1000/day): 429 quota_exceeded, with Retry-After until the
  period resets (00:00 UTC, or the 1st of the month). Both are counted per process, or
  fleet-wide with --redis-url (below). --no-throttle turns off the failed-guess throttle (a
  client that sends 10 bad tokens in a row gets 429 with Retry-After).

FLEET-WIDE LIMITS (REDIS OR VALKEY)
  Without --redis-url each process counts on its own: five authz services let a token limited to
  100 a minute make 500. With --redis-url redis://10.0.0.7:6379 every process given the same
  URL counts each token's rate limit, and each client's failed guesses, in that Redis (one
  round trip a request that needs it; a spent token is remembered locally until it may pass
  again, so a flood of refusals costs no round trip). Redis slow or down: a request waits at
  most --redis-wait (50ms), then --redis-fallback decides: local (default; each process counts
  on its own until Redis answers) or refuse (503 for tokens with a rate limit). A warning is
  logged when it switches, and the fallback's use is counted in the metrics. The URL may hold
  a password: put it in PROTECTED_ENDPOINT_REDIS_URL or the config file; it is never printed.

LIMITS AND TIMEOUTS
  A connection that has not sent a whole request head within --header-read-timeout (10s) is
  closed, and so is one idle for --idle-timeout (60s); at most --max-connections (8192) are
  served at once. No TLS: bind it where only the proxies reach it.

LOGS
  stdout: `listening on http://IP:PORT` once it serves. stderr: what it verifies against,
  whom it trusts, warnings. RUST_LOG sets what is logged (default info).

SIGNALS
  SIGINT (Ctrl-C) or SIGTERM: it stops accepting, lets the decisions in flight finish (at most
  10 s) and exits with status 0.

SETTINGS: FLAGS, ENVIRONMENT, CONFIG FILE
  Each flag is also an environment variable (PROTECTED_ENDPOINT_ and the flag's name in
  capitals, - as _) and a key of the TOML file that --config FILE or PROTECTED_ENDPOINT_CONFIG
  names (the flag's name without --; one flat table). The command line beats the environment,
  which beats the file, which beats the default. Lists (--trust-forwarded, --require-scope) are
  one comma-separated value.
    flag                        environment variable                      in the file
    --config FILE               PROTECTED_ENDPOINT_CONFIG                 -
    --addr IP:PORT              PROTECTED_ENDPOINT_ADDR                   addr = \"127.0.0.1:9000\"
    --tokens FILE               PROTECTED_ENDPOINT_TOKENS                 tokens = \"tokens.json\"
    --authority URL             PROTECTED_ENDPOINT_AUTHORITY              authority = \"http://auth:3001\"
    --service-token-file FILE   PROTECTED_ENDPOINT_SERVICE_TOKEN_FILE     service-token-file = \"/run/secrets/pe\"
    (no flag)                   PROTECTED_ENDPOINT_SERVICE_TOKEN          service-token = \"pe_…\"
    --cache-ttl D               PROTECTED_ENDPOINT_CACHE_TTL              cache-ttl = \"30s\"
    --usage-interval D          PROTECTED_ENDPOINT_USAGE_INTERVAL         usage-interval = \"30s\"
    --deployment NAME           PROTECTED_ENDPOINT_DEPLOYMENT             deployment = \"summarize\"
    --deployment-header H       PROTECTED_ENDPOINT_DEPLOYMENT_HEADER      deployment-header = \"x-protected-endpoint-deployment\"
    --require-scope SCOPES      PROTECTED_ENDPOINT_REQUIRE_SCOPE          require-scope = \"api\"
    --trust-forwarded LIST      PROTECTED_ENDPOINT_TRUST_FORWARDED        trust-forwarded = \"127.0.0.1\"
    --client-ip-header H        PROTECTED_ENDPOINT_CLIENT_IP_HEADER       client-ip-header = \"x-real-ip\"
    --no-throttle               PROTECTED_ENDPOINT_NO_THROTTLE            no-throttle = true
    --redis-url URL             PROTECTED_ENDPOINT_REDIS_URL              redis-url = \"redis://10.0.0.7:6379\"
    --redis-wait D              PROTECTED_ENDPOINT_REDIS_WAIT             redis-wait = \"20ms\"
    --redis-fallback F          PROTECTED_ENDPOINT_REDIS_FALLBACK         redis-fallback = \"refuse\"
    --header-read-timeout D     PROTECTED_ENDPOINT_HEADER_READ_TIMEOUT    header-read-timeout = \"10s\"
    --idle-timeout D            PROTECTED_ENDPOINT_IDLE_TIMEOUT           idle-timeout = \"1m\"
    --max-connections N         PROTECTED_ENDPOINT_MAX_CONNECTIONS        max-connections = 4096
    --metrics                   PROTECTED_ENDPOINT_METRICS                metrics = true
  Flags without a value are true or false in the file, and 1, 0, true or false in the
  environment. Durations are a number of seconds or a number and a unit (s, m, h, d). Every
  value given is checked; a bad one stops the start with a message naming it (exit status 2).
  --check (on the command line only) prints the settings, each with where it came from, and
  exits.

EXAMPLES
  nginx on this host, tokens in a file (the nginx configuration is in docs/guide/proxies.md):
    protected-endpoint authz --tokens tokens.json --trust-forwarded 127.0.0.1 \\
        --deployment-header x-protected-endpoint-deployment
  Envoy (HTTP or gRPC) in a cluster, tokens on an authority:
    export PROTECTED_ENDPOINT_SERVICE_TOKEN=pe_…   # a token with the introspect scope
    protected-endpoint authz --addr 0.0.0.0:9000 --authority http://auth:3001 \\
        --trust-forwarded 10.0.0.0/8 --deployment summarize --require-scope api

EXIT STATUS
  0  stopped by SIGINT or SIGTERM, after a graceful shutdown; or --check found good settings
  1  the start failed: the address is taken, the token file or the service token file cannot
     be read; or the server failed
  2  bad settings: a flag, an environment variable, the config file or one of its keys or
     values, no verifier, the service token given as a flag, --redis-wait or --redis-fallback
     without --redis-url";
