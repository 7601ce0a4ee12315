# ruff: noqa: E501  (a table of requirements: one per line reads best)
"""The section walk: every MUST and SHOULD of OAuth 2.1 (draft-ietf-oauth-v2-1-16), RFC 9700
(OAuth 2.0 Security BCP), RFC 8725 (JWT BCP) and RFC 9068 §4 that applies to an authorization
server or a resource server, each either tested or with a written reason.

A requirement without a reason is tested by one or more functions named
``test_<spec>_<section>_<slug>...`` (dots become underscores) in this package; ``test_walk.py``
checks that each has at least one, that every such test name belongs to a listed requirement,
and that every reason is a real sentence. ``reason`` starts with one of:

- ``not applicable:`` the feature the rule is about does not exist here;
- ``client obligation:`` the rule binds clients (or deployments), not this server;
- ``deviation:`` the rule applies and this server does not follow it, on purpose; the reason
  says why and what compensates. These are also listed in the report of the walk.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    spec: str  # oauth21, rfc9700, rfc8725, rfc9068, rfc7515
    section: str  # as numbered in that document
    slug: str
    text: str  # the rule, paraphrased
    reason: str | None = None  # None: tested

    @property
    def prefix(self) -> str:
        return f"test_{self.spec}_{self.section.replace('.', '_')}_{self.slug}"


R = Requirement
_SENDER = (
    "deviation: neither DPoP (RFC 9449) nor mTLS-bound tokens are implemented, because MCP clients "
    "send neither; compensated by audience-restricted (one resource), one-hour tokens whose "
    "revocation is checked on every request"
)

REQUIREMENTS: list[Requirement] = [
    # -- RFC 9700 §2: best practices -----------------------------------------------------------
    R("rfc9700", "2.1", "redirect_uri_exact_match", "AS MUST compare redirect URIs by exact string matching, except the port of loopback URIs"),
    R("rfc9700", "2.1", "no_open_redirector", "AS MUST NOT expose URLs that forward the browser to arbitrary URIs from a parameter"),
    R("rfc9700", "2.1", "client_csrf", "Clients MUST prevent CSRF (state, PKCE or nonce)",
      "client obligation: the server's part, PKCE advertised and enforced for every client, is tested under 2.1.1 and 4.7.1"),
    R("rfc9700", "2.1", "iss_for_mix_up", "Mix-up defence: the AS sends the RFC 9207 iss parameter clients SHOULD check"),
    R("rfc9700", "2.1", "no_credential_forwarding", "An AS redirecting a request that may hold user credentials MUST avoid forwarding them"),
    R("rfc9700", "2.1.1", "pkce_required_for_public_clients", "Public clients MUST use PKCE (enforced by the AS)"),
    R("rfc9700", "2.1.1", "pkce_required_for_confidential_clients", "PKCE is RECOMMENDED for confidential clients; required here"),
    R("rfc9700", "2.1.1", "constant_challenge_detection", "AS are encouraged to detect constant PKCE challenges",
      "not applicable: 'encouraged' is neither MUST nor SHOULD; a challenge binds exactly one code, so reusing one "
      "cannot redeem anyone else's code"),
    R("rfc9700", "2.1.1", "s256_only", "Clients SHOULD use S256, which does not expose the verifier; the AS refuses plain"),
    R("rfc9700", "2.1.1", "pkce_supported", "AS MUST support PKCE"),
    R("rfc9700", "2.1.1", "code_verifier_enforced", "With a code_challenge sent, the AS MUST enforce the code_verifier"),
    R("rfc9700", "2.1.1", "pkce_downgrade", "AS MUST accept a code_verifier only if the authorization request had a code_challenge"),
    R("rfc9700", "2.1.1", "pkce_discoverable", "AS MUST let clients detect PKCE support; code_challenge_methods_supported RECOMMENDED"),
    R("rfc9700", "2.1.2", "no_implicit_grant", "Clients SHOULD NOT use response_type=token; this AS does not offer it"),
    R("rfc9700", "2.2.1", "sender_constrained_access_tokens", "AS and RS SHOULD sender-constrain access tokens", _SENDER),
    R("rfc9700", "2.2.2", "refresh_rotation_for_public_clients", "Public clients' refresh tokens MUST be sender-constrained or rotated"),
    R("rfc9700", "2.3", "audience_restricted", "Access tokens SHOULD be audience-restricted; the RS MUST refuse others' tokens"),
    R("rfc9700", "2.3", "least_privilege", "Token privileges SHOULD be the minimum required (scope narrowing)"),
    R("rfc9700", "2.4", "no_password_grant", "The resource owner password credentials grant MUST NOT be used"),
    R("rfc9700", "2.5", "client_authentication_enforced", "AS SHOULD enforce client authentication where possible"),
    R("rfc9700", "2.5", "asymmetric_client_authentication", "Asymmetric client authentication (mTLS, private_key_jwt) is RECOMMENDED",
      "deviation: only client_secret_basic, client_secret_post and none are offered (what MCP clients implement); "
      "secrets are 256-bit random, stored only as SHA-256 hashes and compared in constant time"),
    R("rfc9700", "2.6", "metadata_published", "AS SHOULD publish RFC 8414 metadata (RECOMMENDED)"),
    R("rfc9700", "2.6", "client_id_not_chosen_by_client", "AS SHOULD NOT let clients influence their client_id"),
    R("rfc9700", "2.6", "no_http_redirect_uris", "AS MUST NOT allow http redirect URIs except loopback ones"),
    R("rfc9700", "2.6", "tls_issuer", "End-to-end TLS is RECOMMENDED: the issuer must be https unless loopback"),
    R("rfc9700", "2.6", "in_browser_messages", "postMessage responses MUST verify both origins",
      "not applicable: authorization responses are HTTP redirects only; no web-message response mode exists"),
    R("rfc9700", "2.6", "no_cors_at_authorization_endpoint", "CORS MUST NOT be supported at the authorization endpoint"),
    # -- RFC 9700 §4: attacks and mitigations ----------------------------------------------------
    R("rfc9700", "4.1.3", "exact_matching", "AS MUST ensure requested and registered redirect URIs are equal (RFC 3986 §6.2.1)"),
    R("rfc9700", "4.1.3", "loopback_any_port", "AS MUST allow variable ports for localhost redirect URIs of native apps"),
    R("rfc9700", "4.2.4", "no_third_party_content", "Authorization endpoint pages SHOULD NOT include third-party resources or links"),
    R("rfc9700", "4.2.4", "code_single_use", "Codes MUST be invalidated after first use; a second use SHOULD revoke the tokens"),
    R("rfc9700", "4.3.2", "token_not_in_query", "Access tokens MUST NOT be passed in URI query parameters"),
    R("rfc9700", "4.4.2", "issuer_identification", "The AS identifies itself in the authorization response (iss, RFC 9207)"),
    R("rfc9700", "4.5.3", "code_bound_to_transaction", "Codes are bound to the client, redirect URI and PKCE challenge (injection)"),
    R("rfc9700", "4.6", "access_token_injection", "Access token injection countermeasures",
      "not applicable: the attack needs tokens in the authorization response (implicit), never issued here"),
    R("rfc9700", "4.7.1", "pkce_support_detectable", "The AS MUST provide a way to detect PKCE support"),
    R("rfc9700", "4.8.2", "downgrade_rejected", "AS MUST reject a code_verifier when the authorization request had no challenge"),
    R("rfc9700", "4.9.3", "tokens_not_stored_in_plain_text", "The RS MUST NOT store or transfer access tokens in plain text"),
    R("rfc9700", "4.9.3", "sender_constrained", "Sender-constrained access tokens SHOULD be used", _SENDER),
    R("rfc9700", "4.10.1", "sender_constrained", "AS SHOULD ensure access tokens are sender-constrained", _SENDER),
    R("rfc9700", "4.10.2", "audience_checked", "The RS verifies the intended audience and refuses other tokens"),
    R("rfc9700", "4.11.1", "client_open_redirector", "Clients MUST NOT expose open redirectors",
      "client obligation: a redirector at the client is outside this server"),
    R("rfc9700", "4.11.2", "invalid_redirect_not_followed", "AS MUST NOT redirect on an invalid client_id / redirect_uri combination"),
    R("rfc9700", "4.11.2", "authenticate_before_redirecting",
      "AS MUST authenticate the user before redirecting (silent authentication aside) and SHOULD only "
      "redirect automatically to trusted URIs"),
    R("rfc9700", "4.12", "no_307_after_post", "AS MUST NOT use 307 for requests that may carry credentials; SHOULD use 303"),
    R("rfc9700", "4.13", "forwarded_headers_not_trusted", "Security-relevant forwarded headers MUST be sanitised (trusted hops only)"),
    R("rfc9700", "4.13", "proxy_link_protected", "The proxy-to-application link MUST be protected",
      "client obligation: this binds the deployment (the operator's proxy and network); README covers it"),
    R("rfc9700", "4.14.2", "refresh_tokens_by_policy", "AS MUST decide per client whether to issue refresh tokens"),
    R("rfc9700", "4.14.2", "refresh_bound_to_scope_and_resource", "Refresh tokens MUST be bound to the consented scope and resource"),
    R("rfc9700", "4.14.2", "replay_detected_by_rotation", "AS MUST detect refresh token replay for public clients (rotation)"),
    R("rfc9700", "4.14.2", "self_contained_refresh_integrity", "Grant data encoded in refresh tokens MUST be integrity-protected",
      "not applicable: refresh tokens are opaque 256-bit random values looked up by hash; nothing is encoded in them"),
    R("rfc9700", "4.14.2", "refresh_expiry", "Refresh tokens SHOULD expire when the client has been inactive"),
    R("rfc9700", "4.15.1", "client_cannot_pose_as_person", "Clients SHOULD NOT influence client_id or claims confusable with a person"),
    R("rfc9700", "4.16", "clickjacking", "AS MUST prevent clickjacking and SHOULD use CSP on every page it shows"),
    R("rfc9700", "4.16", "framing_origins_configurable", "AS SHOULD let administrators configure origins allowed to frame",
      "deviation: deliberately stricter; framing is never allowed (frame-ancestors 'none', X-Frame-Options DENY) "
      "since MCP clients open the authorization endpoint in a browser tab, never in a frame"),
    R("rfc9700", "4.17.2", "in_browser_messages", "postMessage origins MUST be exact and trusted",
      "not applicable: no in-browser communication response mode exists"),
    # -- OAuth 2.1 ----------------------------------------------------------------------------------
    R("oauth21", "1.4", "tokens_cannot_be_forged", "AS MUST ensure access tokens cannot be generated, modified or guessed"),
    R("oauth21", "1.4", "tokens_confidential_in_storage", "Access (and refresh, 4.3) tokens MUST be kept confidential in transit and storage: no log line, no database column holds one"),
    R("oauth21", "1.4.1", "scope_in_response", "AS MUST return the scope when it differs; a missing scope gets the defaults"),
    R("oauth21", "1.5", "https_urls", "All OAuth URLs MUST use https, except loopback redirect URIs"),
    R("oauth21", "1.6", "no_307", "Any redirection method except HTTP 307"),
    R("oauth21", "1.7.1", "long_values", "Parameter values SHOULD be supported up to an 8000-octet request line"),
    R("oauth21", "2.1", "one_client_type", "A client_id SHOULD NOT be treated as more than one client type"),
    R("oauth21", "2.3", "redirect_uri_absolute_no_fragment", "Redirect URIs MUST be absolute, without fragment; their query is kept"),
    R("oauth21", "2.3.1", "complete_redirect_registered", "AS MUST require complete redirect URIs and reject inexact ones"),
    R("oauth21", "2.3.1", "private_use_scheme_period", "Private-use schemes without a period SHOULD be rejected",
      "deviation: single-label private-use schemes are accepted because MCP desktop clients register them; they are "
      "still matched exactly, never http, and self-registered clients are marked unverified on the consent page"),
    R("oauth21", "2.3.2", "redirect_uri_required_with_several", "redirect_uri is required when several are registered"),
    R("oauth21", "2.3.3", "client_csrf", "Clients MUST prevent CSRF", "client obligation: as RFC 9700 2.1; the server's part is PKCE, tested under 4.1.1 and 7.5.1.1"),
    R("oauth21", "2.3.4", "client_mix_up", "Clients talking to several AS MUST prevent mix-up",
      "client obligation: the server's part (iss) is tested under 4.1.2 and 7.15"),
    R("oauth21", "2.3.5", "invalid_endpoint_not_redirected", "AS SHOULD inform the person and MUST NOT redirect to an invalid URI"),
    R("oauth21", "2.3.6", "endpoint_content", "Clients SHOULD NOT put third-party scripts on their redirect endpoint",
      "client obligation: the redirect endpoint is the client's page"),
    R("oauth21", "2.4", "one_authentication_method", "A client MUST NOT use more than one authentication method per request"),
    R("oauth21", "2.4", "unauthenticated_clients_limited", "AS MUST limit the exposure of tokens issued to unauthenticated clients"),
    R("oauth21", "2.4", "privileges_follow_identification", "A client's privileges MUST depend on how it was identified"),
    R("oauth21", "2.4.1", "client_secret_post_supported", "AS MUST support client_secret_post; secrets MUST NOT be in the URI"),
    R("oauth21", "2.4.1", "basic_form_encoding", "Basic credentials are form-urlencoded before base64"),
    R("oauth21", "2.4.1", "brute_force_protection", "AS MUST protect endpoints that check client secrets against brute force"),
    R("oauth21", "2.4.2", "other_methods", "Other authentication methods MUST be mapped to client identifiers",
      "not applicable: no other client authentication method is offered"),
    R("oauth21", "3.1", "resource_owner_authenticated_first", "AS MUST first authenticate the resource owner"),
    R("oauth21", "3.1", "get_supported", "AS MUST support GET at the authorization endpoint"),
    R("oauth21", "3.1", "unknown_parameters_ignored", "AS MUST ignore unrecognized authorization request parameters"),
    R("oauth21", "3.1", "no_repeated_parameters", "Parameters MUST NOT repeat; empty ones MUST be treated as omitted"),
    R("oauth21", "3.1", "no_cors", "CORS MUST NOT be supported at the authorization endpoint"),
    R("oauth21", "3.2", "token_endpoint_parameters", "Token endpoint: POST; unknown parameters ignored, empty = omitted, no repeats"),
    R("oauth21", "3.2.1", "confidential_clients_authenticate", "Confidential clients MUST authenticate at the token endpoint"),
    R("oauth21", "3.2.3", "no_store", "Cache-Control: no-store on every response with tokens or credentials"),
    R("oauth21", "3.2.3", "refresh_bound_to_consent", "Refresh tokens MUST be bound to the scope and resource consented"),
    R("oauth21", "3.2.4", "error_response", "Error responses: codes, 401 + WWW-Authenticate for header auth, restricted charset"),
    R("oauth21", "4.1.1", "response_type_checked", "A missing or unknown response_type MUST get an error response"),
    R("oauth21", "4.1.1", "pkce_enforced", "AS MUST support and enforce code_challenge and code_verifier"),
    R("oauth21", "4.1.2", "code_short_lived", "Codes MUST expire shortly after issue (10 minutes at most RECOMMENDED)"),
    R("oauth21", "4.1.2", "state_and_iss", "The response echoes state exactly and MUST carry iss"),
    R("oauth21", "4.1.2", "challenge_not_disclosed", "AS MUST NOT put the code_challenge in a response parameter others can read"),
    R("oauth21", "4.1.2.1", "errors_after_validation_only", "AS MUST validate client and redirect URI before redirecting errors"),
    R("oauth21", "4.1.2.1", "unsupported_method_invalid_request", "An unsupported code_challenge_method MUST be invalid_request"),
    R("oauth21", "4.1.3", "code_used_once", "An access token only once per code; a second valid request MUST be denied"),
    R("oauth21", "4.1.3", "code_bound_to_client", "AS MUST ensure the code was issued to the authenticated or named client"),
    R("oauth21", "4.2", "client_credentials_confidential_only", "client_credentials MUST only be used by (authenticated) confidential clients"),
    R("oauth21", "4.3", "refresh_bound_to_client", "AS MUST maintain and verify the refresh token's binding to its client"),
    R("oauth21", "4.3", "refresh_unguessable", "Refresh tokens MUST NOT be generatable, modifiable or guessable"),
    R("oauth21", "4.3.1", "refresh_scope_not_widened", "A refresh request MUST NOT add scope beyond the original grant"),
    R("oauth21", "4.3.1", "rotation_replay_revokes_grant", "Rotation: a replayed refresh token revokes the active one and the grant"),
    R("oauth21", "4.3.3", "new_refresh_same_scope", "A new refresh token's scope MUST equal the old one's"),
    R("oauth21", "4.4", "unsupported_grant_type", "Unknown extension grants are unsupported_grant_type"),
    R("oauth21", "5", "resource_server_validates", "The RS MUST validate the token, its expiry and its scope"),
    R("oauth21", "5.1", "query_tokens_ignored", "Resource servers MUST ignore access tokens in the query"),
    R("oauth21", "5.1.1", "bearer_header", "RS MUST support the Authorization header; the scheme is case-insensitive"),
    R("oauth21", "5.3.1", "www_authenticate", "RS MUST send WWW-Authenticate: Bearer when credentials are missing or invalid"),
    R("oauth21", "5.3.2", "error_codes", "invalid_token 401, insufficient_scope 403, no error code without credentials"),
    R("oauth21", "7.1.1.2", "no_tokens_in_cookies", "Bearer tokens MUST NOT be stored in cookies sent in the clear"),
    R("oauth21", "7.1.3.5", "short_lived_tokens", "AS SHOULD issue short-lived bearer tokens"),
    R("oauth21", "7.1.3.6", "audience_restriction", "AS SHOULD issue audience-restricted bearer tokens"),
    R("oauth21", "7.1.3.7", "tokens_not_in_urls", "Bearer tokens MUST NOT be passed in page URLs"),
    R("oauth21", "7.1.4", "rs_refuses_foreign_tokens", "The RS MUST refuse tokens not meant for it or for the action"),
    R("oauth21", "7.3", "consent_informs", "AS SHOULD authenticate the person and show the client and the requested scope"),
    R("oauth21", "7.3", "consent_from_the_person", "Approval must come from the person's own review: sign-in and consent forms carry session-bound CSRF tokens, and a GET never approves"),
    R("oauth21", "7.3", "no_silent_repeat_for_unproven_clients",
      "AS SHOULD NOT approve repeated requests automatically unless the client's identity is assured (7.3.1): "
      "a remembered consent skips the page only for confidential clients; public ones are asked every time"),
    R("oauth21", "7.4", "client_cannot_pose_as_person", "AS SHOULD NOT let clients influence identifiers confusable with people"),
    R("oauth21", "7.5.1.1", "pkce_for_every_client", "AS MUST enforce PKCE (the OpenID nonce exception does not apply here)"),
    R("oauth21", "7.5.2", "plain_forbidden", "The plain code challenge method is forbidden"),
    R("oauth21", "7.5.3", "replay_revokes_only_when_valid", "Revoke on a valid code replay; SHOULD NOT on a replay with invalid parameters"),
    R("oauth21", "7.5.4", "no_307", "AS MUST NOT use 307 after a request with credentials; SHOULD use 303"),
    R("oauth21", "7.7", "credentials_unguessable", "Generated credentials MUST have >= 128 bits (SHOULD 160); passwords protected otherwise"),
    R("oauth21", "7.9", "consent_phishing", "SHOULD restrict client scopes, show who asks, and let people and admins revoke grants"),
    R("oauth21", "7.10", "challenge_methods_advertised", "AS MUST provide a way to detect supported code challenge methods"),
    R("oauth21", "7.11", "clickjacking", "AS MUST prevent clickjacking; SHOULD use CSP level 2"),
    R("oauth21", "7.12", "input_validation", "AS MUST treat parameters, state and redirect_uri in particular, as malicious input"),
    R("oauth21", "7.13.2", "as_open_redirector", "AS MUST take precautions against being used as an open redirector"),
    R("oauth21", "7.14", "tls_termination", "Tokens MUST stay confidential between a TLS terminator and the server",
      "client obligation: this binds the deployment's network between proxy and server"),
    R("oauth21", "7.15", "mix_up", "Mix-up: the AS sends its issuer identifier in the authorization response"),
    R("oauth21", "8.1", "public_native_clients", "AS MUST NOT require a shared secret of native apps; MUST record the client type"),
    R("oauth21", "8.4.2", "loopback_any_port", "AS MUST allow any port for loopback IP redirect URIs"),
    R("oauth21", "8.4.3", "reverse_domain_schemes", "Apps MUST use reverse-domain private-use schemes",
      "client obligation: the server-side SHOULD is OAuth 2.1 2.3.1 (a documented deviation)"),
    R("oauth21", "10.2", "redirect_uri_in_token_request", "AS MUST accept and enforce redirect_uri in the token request (OAuth 2.0)"),
    # -- RFC 8725 (JWT BCP), RFC 9068 §4, RFC 7515 ----------------------------------------------
    R("rfc8725", "3.1", "algorithm_verification", "Verify the algorithm: alg none and algorithm confusion refused"),
    R("rfc8725", "3.2", "appropriate_algorithms", "Only appropriate algorithms: asymmetric by default, no symmetric JWKs at workers"),
    R("rfc8725", "3.3", "validate_cryptographic_operations", "Every signature is verified; altered or foreign-signed tokens refused"),
    R("rfc8725", "3.4", "validate_cryptographic_inputs", "Validate ECDH-ES inputs (invalid curve attacks)",
      "not applicable: no JWE and no key agreement; verification keys come only from the server's own keys or JWKS"),
    R("rfc8725", "3.5", "key_entropy", "Keys MUST have sufficient entropy (no human-memorable HMAC secrets)"),
    R("rfc8725", "3.6", "no_compression", "Avoid compression of encryption inputs", "not applicable: tokens are signed (JWS) and never encrypted (no JWE), so nothing is compressed"),
    R("rfc8725", "3.7", "utf8", "JWT content MUST be UTF-8; anything else is refused, never a crash"),
    R("rfc8725", "3.8", "issuer_and_subject", "Validate the issuer (and the subject)"),
    R("rfc8725", "3.9", "audience", "Use and validate the audience"),
    R("rfc8725", "3.10", "received_claims", "Do not trust received claims: kid injection, jku/x5u/jwk header URLs and keys"),
    R("rfc8725", "3.11", "explicit_typing", "Use and check explicit typing (typ at+jwt)"),
    R("rfc8725", "3.12", "mutually_exclusive_rules", "Other kinds of JWT cannot pass as access tokens"),
    R("rfc9068", "4", "validation", "RS MUST check typ, iss, aud, signature (never alg none) and exp of JWT access tokens"),
    R("rfc7515", "4.1.11", "crit", "A crit header naming extensions the recipient does not understand MUST be refused"),
]  # fmt: skip
