"""Browser sign-in: OpenID Connect's authorization code flow with PKCE, and the sessions of
signed-in browsers.

What a sign-in under way must remember (state, PKCE verifier, nonce, the page to go back
to) and the sessions are kept in the job store: the provider may send the browser back to
any instance. A session is an opaque random cookie; the store keeps only its digest. The
browser's user is checked exactly as a bearer token is: its access token passes the same
checks (issuer, audience, signature), its ID token proves the nonce.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from process_api.auth.api_keys import digest
from process_api.auth.authenticate import Authenticator
from process_api.auth.user import User, user_from_dict, user_to_dict
from process_api.errors import ServiceUnavailable, Unauthenticated
from process_api.jobs.model import utcnow
from process_api.settings import Settings
from process_api.store.base import JobStore, Session, SignIn

#: how long a browser may take at the provider's sign-in page.
SIGN_IN_TIME = timedelta(minutes=10)
SCOPE = "openid profile email"
#: the cookie of a signed-in browser, and the one that ties a sign-in to the browser that
#: started it (its state): a sign-in's answer opened in another browser signs nobody in.
SESSION_COOKIE = "process_api_session"
SIGN_IN_COOKIE = "process_api_sign_in"


def same_secret(sent: str, kept: str) -> bool:
    """In constant time; any text may be sent (compare_digest takes only ASCII strings)."""
    return secrets.compare_digest(sent.encode(), kept.encode())


class SignIns:
    def __init__(self, settings: Settings, store: JobStore, authenticator: Authenticator) -> None:
        assert authenticator.verifier is not None and settings.oidc_client_id
        self.verifier = authenticator.verifier
        self.authenticator = authenticator
        self.store = store
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self.client_secret = secret.get_secret_value() if secret else None
        self.lifetime = timedelta(seconds=settings.session_lifetime)
        issuer = urlsplit(self.verifier.issuer)
        #: where the browser is sent to sign in and out (the issuer's site, as providers do).
        self.origin = f"{issuer.scheme}://{issuer.netloc}"

    async def start(self, redirect_uri: str, next_page: str) -> tuple[str, str]:
        """The provider's address the browser goes to, to sign in, and the sign-in's state,
        which the browser keeps (SIGN_IN_COOKIE) to show it is the one that started it."""
        state, verifier, nonce = (secrets.token_urlsafe(32) for _ in range(3))
        expires = utcnow() + SIGN_IN_TIME
        await self.store.add_sign_in(SignIn(digest(state), verifier, nonce, next_page, expires))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        endpoint = (await self.verifier.metadata()).get("authorization_endpoint")
        if not isinstance(endpoint, str):
            raise ServiceUnavailable("the sign-in provider has no authorization endpoint")
        return f"{endpoint}?{urlencode(query)}", state

    async def finish(self, code: str, state: str, redirect_uri: str) -> tuple[str, str]:
        """The new session's cookie value and the page to go back to, once the provider's
        code is exchanged and its tokens checked."""
        sign_in = await self.store.take_sign_in(digest(state))
        if sign_in is None:
            raise Unauthenticated("this sign-in is unknown or took too long; sign in again")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": sign_in.verifier,
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        endpoint = (await self.verifier.metadata()).get("token_endpoint")
        if not isinstance(endpoint, str):
            raise ServiceUnavailable("the sign-in provider has no token endpoint")
        tokens = await self.verifier.post_form(endpoint, form)
        access, identity = tokens.get("access_token"), tokens.get("id_token")
        if not isinstance(access, str) or not isinstance(identity, str):
            error = str(tokens.get("error", "no tokens"))[:60]
            raise Unauthenticated(f"the sign-in provider did not sign the browser in ({error})")
        proof = await self.verifier.claims(identity, audience=self.client_id)
        if not secrets.compare_digest(str(proof.get("nonce", "")), sign_in.nonce):
            raise Unauthenticated("the sign-in provider's answer is not for this sign-in")
        user = self.authenticator.token_user(await self.verifier.claims(access))
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = Session(user_to_dict(user), csrf, utcnow() + self.lifetime)
        await self.store.add_session(digest(cookie), session)
        return cookie, sign_in.next

    async def session(self, cookie: str) -> tuple[User, str] | None:
        """The user of a session cookie and its CSRF token; None once it ended."""
        found = await self.store.session_of(digest(cookie))
        return None if found is None else (user_from_dict(found.user), found.csrf)

    async def end(self, cookie: str) -> None:
        await self.store.remove_session(digest(cookie))

    async def sign_out_address(self, back_to: str) -> str | None:
        """The provider's sign-out page, if it has one, coming back to `back_to`."""
        endpoint = (await self.verifier.metadata()).get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return None
        query = {"client_id": self.client_id, "post_logout_redirect_uri": back_to}
        return f"{endpoint}?{urlencode(query)}"
