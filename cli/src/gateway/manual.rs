//! `protected-endpoint gateway --help`: the operator's manual, around clap's list of flags
//! (`-h` shows the list alone). A test (`cli/tests/it/gateway_cmd.rs`) holds it to naming
//! every flag and every environment variable.

/// Above the flags.
pub(crate) const ABOUT: &str = "\
Protect any HTTP or gRPC service with API tokens: a reverse proxy in front of one upstream
(a BentoML service, a Node or Python app, a gRPC server), wrapped by the same layer a Rust
service would use. A request passes only with a valid token (`Authorization: Bearer TOKEN`)
that allows the deployment and scopes you name; the upstream then gets it without the token,
with the token's identity in headers it can trust.

Tokens come from a token file (--tokens) or a token authority (--authority, the address of
`protected-endpoint serve`). Every flag but --check is also an environment variable and a
config-file key: see SETTINGS below the flags.";

/// Below the flags.
pub(crate) const MANUAL: &str = "\
WHAT PASSES
  /livez, /healthz, /readyz    open: forwarded without a token (the probes the platform's
                               services serve and its clients poll first); --open adds paths,
                               --no-default-open removes these. Exact paths only.
  /sign-in                     with --browser-sign-in: the sign-in page, served by the gateway
  /metrics                     with --metrics: the gateway's metrics (the upstream's own
                               /metrics is then hidden)
  anything else                a token is checked first, then forwarded:
    no token                   401, `WWW-Authenticate: Bearer realm=…` (or, for a browser with
                               --browser-sign-in, a redirect to /sign-in)
    malformed                  400 invalid_request
    unknown, expired, deleted  401 invalid_token
    no access                  403 insufficient_scope (another --deployment, a --require-scope
                               it lacks)
    10 bad tokens in a row     429 with Retry-After, per client (the failed-guess throttle)
    its own rate limit spent   429 rate_limited with Retry-After (a token created with
                               --rate-limit 100/1m; counted per gateway process,
                               or fleet-wide with --redis-url)
    its quota spent            429 quota_exceeded with Retry-After until the period resets
                               (--quota 1000/day: 00:00 UTC; /month: the 1st), counted
                               like rate limits
    authority unreachable      503: fail closed, never forwarded
  Refusals are JSON (`{\"error\", \"error_description\"}`), or a gRPC status for gRPC calls
  (16 UNAUTHENTICATED, 7 PERMISSION_DENIED, 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE); a refused
  request never reaches the upstream.

WHAT THE UPSTREAM GETS
  X-Protected-Endpoint-Uid           the token's uid
  X-Protected-Endpoint-Name          its name (percent-encoded UTF-8: `ci bot` is `ci%20bot`)
  X-Protected-Endpoint-Scopes        its scopes, space-separated
  X-Protected-Endpoint-Deployments   `*` (every deployment) or the names, space-separated
  X-Forwarded-For, -Proto, -Host     from the connection (a client's own are dropped unless it
                                     is a --trust-forwarded proxy, whose are extended)
  Any X-Protected-Endpoint-* header a client sent is removed first, on every path: open paths
  get none at all. The `Authorization` header and the sign-in cookie are removed (keep them
  with --pass-authorization); hop-by-hop headers are removed (RFC 9110), `TE: trailers` kept.
  Bodies stream both ways, never buffered whole (uploads, server-sent events, gRPC streams);
  trailers pass; WebSocket and other upgrades are tunnelled once the token is checked
  (--upstream-protocol http1).

THE UPSTREAM
  --upstream http://127.0.0.1:3000 names it (cleartext only: keep it on an address only the
  gateway reaches; put TLS in front of the gateway). The protocol is a flag, not the URL's
  scheme: --upstream-protocol http1 (default: HTTP/1.1, what uvicorn, `bentoml serve`, Node
  speak) or h2c (cleartext HTTP/2 by prior knowledge: gRPC servers). Clients may speak
  HTTP/1.1 or h2c to the gateway either way.
  The upstream down or breaking off: 502. No answer started within --upstream-timeout (60s):
  504. Both are JSON (or gRPC UNAVAILABLE) and name nothing about the upstream; the details are
  in the gateway's log.

TOKENS
  --tokens tokens.json           a token file (`protected-endpoint token create --file
                                 tokens.json --name ci --scope api --deployment summarize`),
                                 reloaded when it changes.
  --authority http://127.0.0.1:3001
                                 a token authority (`protected-endpoint serve`): introspection,
                                 answers cached for --cache-ttl (10s), its revocation stream
                                 followed so a deleted token is refused at once.
  Following an authority, it reports how often each token was used here (its cache hits
  included; not the calls a rate limit or quota refused) every --usage-interval (5s; `off`:
  never), so the authority's listing and console count the whole fleet; the last counts are
  sent when it stops.
  With --authority the gateway shows the authority a service token of its own (scope
  `introspect`): set PROTECTED_ENDPOINT_SERVICE_TOKEN, or give --service-token-file FILE (a
  mounted secret), or `service-token = \"…\"` in the config file. It is never a flag: the
  command line stays in shell history and shows in `ps`.

BEHIND A PROXY, THE THROTTLE
  --trust-forwarded 10.0.0.0/8 names the load balancers in front of the gateway: their
  X-Forwarded-For names the client, whom the failed-guess throttle then counts (each client on
  its own), and their X-Forwarded-Proto/-Host are kept. --client-ip-header H reads the client
  from another header instead; --no-throttle turns the throttle off.

FLEET-WIDE LIMITS (REDIS OR VALKEY)
  Without --redis-url each process counts on its own: five gateways let a token limited to
  100 a minute make 500. With --redis-url redis://10.0.0.7:6379 every process given the same
  URL counts each token's rate limit, and each client's failed guesses, in that Redis (one
  round trip a request that needs it; a spent token is remembered locally until it may pass
  again, so a flood of refusals costs no round trip). Redis slow or down: a request waits at
  most --redis-wait (50ms), then --redis-fallback decides: local (default; each process counts
  on its own until Redis answers) or refuse (503 for tokens with a rate limit). A warning is
  logged when it switches, and the fallback's use is counted in the metrics. The URL may hold
  a password: put it in PROTECTED_ENDPOINT_REDIS_URL or the config file; it is never printed.

LIMITS AND TIMEOUTS
  HTTP/1.1 and HTTP/2 (h2c) on one port. A connection that has not sent a whole request head
  within --header-read-timeout (10s) is closed, and so is one idle for --idle-timeout (60s); at
  most --max-connections (8192) are served at once (a WebSocket holds its slot until it
  closes). No TLS: terminate it in front of the gateway.

METRICS
  --metrics serves Prometheus text at GET /metrics, without a token: the layer's decisions by
  outcome. Counts only, never a token or an address; still, keep /metrics from the outside.

LOGS
  stdout: `listening on http://IP:PORT` once it serves. stderr: what it verifies against, what
  it protects, warnings (502/504 with their cause). RUST_LOG sets what is logged (default
  info).

SIGNALS
  SIGINT (Ctrl-C) or SIGTERM: the gateway stops accepting, lets the requests in flight finish
  (at most 10 s) and exits with status 0.

SETTINGS: FLAGS, ENVIRONMENT, CONFIG FILE
  Each flag is also an environment variable (PROTECTED_ENDPOINT_ and the flag's name in
  capitals, - as _) and a key of the TOML file that --config FILE or PROTECTED_ENDPOINT_CONFIG
  names (the flag's name without --; one flat table). For each setting, the command line beats
  the environment, which beats the file, which beats the default. Of --tokens and --authority,
  the one given in the higher place wins and the other is dropped; both in one place is an
  error. Lists (--open, --trust-forwarded, --require-scope) are one comma-separated value.
    flag                        environment variable                      in the file
    --config FILE               PROTECTED_ENDPOINT_CONFIG                 -
    --addr IP:PORT              PROTECTED_ENDPOINT_ADDR                   addr = \"0.0.0.0:8080\"
    --upstream URL              PROTECTED_ENDPOINT_UPSTREAM               upstream = \"http://127.0.0.1:3000\"
    --upstream-protocol P       PROTECTED_ENDPOINT_UPSTREAM_PROTOCOL      upstream-protocol = \"h2c\"
    --upstream-timeout D        PROTECTED_ENDPOINT_UPSTREAM_TIMEOUT       upstream-timeout = \"2m\"
    --open PATHS                PROTECTED_ENDPOINT_OPEN                   open = \"/metrics,/docs\"
    --no-default-open           PROTECTED_ENDPOINT_NO_DEFAULT_OPEN        no-default-open = true
    --pass-authorization        PROTECTED_ENDPOINT_PASS_AUTHORIZATION     pass-authorization = true
    --tokens FILE               PROTECTED_ENDPOINT_TOKENS                 tokens = \"tokens.json\"
    --authority URL             PROTECTED_ENDPOINT_AUTHORITY              authority = \"http://auth:3001\"
    --service-token-file FILE   PROTECTED_ENDPOINT_SERVICE_TOKEN_FILE     service-token-file = \"/run/secrets/pe\"
    (no flag)                   PROTECTED_ENDPOINT_SERVICE_TOKEN          service-token = \"pe_…\"
    --cache-ttl D               PROTECTED_ENDPOINT_CACHE_TTL              cache-ttl = \"30s\"
    --usage-interval D          PROTECTED_ENDPOINT_USAGE_INTERVAL         usage-interval = \"30s\"
    --deployment NAME           PROTECTED_ENDPOINT_DEPLOYMENT             deployment = \"summarize\"
    --require-scope SCOPES      PROTECTED_ENDPOINT_REQUIRE_SCOPE          require-scope = \"api\"
    --browser-sign-in           PROTECTED_ENDPOINT_BROWSER_SIGN_IN        browser-sign-in = true
    --trust-forwarded LIST      PROTECTED_ENDPOINT_TRUST_FORWARDED        trust-forwarded = \"10.0.0.0/8\"
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
  environment. Durations are a number of seconds or a number and a unit (s, m, h, d). A
  variable set to the empty string counts as not set. Every value given is checked, even one a
  higher place overrides; a bad one stops the start with a message naming it (exit status 2).
  --check (on the command line only) prints the settings, each with where it came from, and
  exits: `protected-endpoint gateway --config new.toml --check`.

EXAMPLES
  A BentoML service on 127.0.0.1:3000, tokens in a file:
    protected-endpoint token create --file tokens.json --name ci --scope api \\
        --deployment summarize
    protected-endpoint gateway --upstream http://127.0.0.1:3000 --tokens tokens.json \\
        --deployment summarize --addr 0.0.0.0:8080
    curl -H \"Authorization: Bearer pe_…\" http://127.0.0.1:8080/summarize …
  A gRPC server, tokens on an authority:
    export PROTECTED_ENDPOINT_SERVICE_TOKEN=pe_…   # a token with the introspect scope
    protected-endpoint gateway --upstream http://127.0.0.1:50051 --upstream-protocol h2c \\
        --authority http://127.0.0.1:3001 --deployment summarize --require-scope api
  A config file, e.g. /etc/protected-endpoint/gateway.toml:
    addr = \"0.0.0.0:8080\"
    upstream = \"http://127.0.0.1:3000\"
    authority = \"http://127.0.0.1:3001\"
    service-token-file = \"/run/secrets/protected-endpoint\"
    deployment = \"summarize\"
    trust-forwarded = \"10.0.0.0/8\"
    metrics = true

EXIT STATUS
  0  stopped by SIGINT or SIGTERM, after a graceful shutdown; or --check found good settings
  1  the start failed: the address is taken, the token file or the service token file cannot
     be read; or the server failed
  2  bad settings: a flag, an environment variable, the config file or one of its keys or
     values, no --upstream, no verifier, the service token given as a flag,
     --redis-wait or --redis-fallback without --redis-url";
