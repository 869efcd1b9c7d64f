"""openplatform-client: the Python SDK of openplatform's open API and OAuth
2.0 server (the wire contract is PROTOCOL.md).

>>> from openplatform_client import Client
>>> with Client("API_KEY", "SECRET") as client:          # doctest: +SKIP
...     client.users.get_info(uids=[1], fields=["username"])
[UserInfo(uid=1, username='demo', ...)]
"""

from openplatform_client._batch import MAX_BATCH_ITEMS, Batch, BatchItem
from openplatform_client._calls import IDEMPOTENT_METHODS
from openplatform_client._catalogue import CATALOGUE, CatalogueEntry, Lang
from openplatform_client._client import DEFAULT_BASE_URL, AsyncClient, Client
from openplatform_client._exceptions import (
    AccessDeniedError,
    APIConnectionError,
    APIError,
    APIResponseError,
    APITimeoutError,
    ApplicationNotFoundError,
    AuthenticationError,
    BatchError,
    CallbackError,
    DatabaseError,
    DataStoreError,
    ExpiredTokenError,
    InvalidClientError,
    InvalidGrantError,
    InvalidOperationError,
    InvalidParameterError,
    InvalidRequestError,
    InvalidScopeError,
    MethodNotFoundError,
    OAuthError,
    ObjectExistsError,
    ObjectNotFoundError,
    OpenPlatformError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    RedirectURIMismatchError,
    ServiceUnavailableError,
    UnauthorizedClientError,
    UnknownError,
    UnsupportedGrantTypeError,
    UnsupportedResponseTypeError,
)
from openplatform_client._oauth import (
    AsyncOAuth,
    AuthorizationRequest,
    OAuth,
    TokenSet,
    pkce_challenge,
    pkce_verifier,
)
from openplatform_client._results import (
    ApplicationInfo,
    AssociatedObject,
    AssociationDefinition,
    AssociationType,
    PropertyDefinition,
    PropertyType,
    UserInfo,
)
from openplatform_client._retries import RetryPolicy
from openplatform_client._signing import SignMethod, canonical_string, sign

__version__ = "0.1.0"

__all__ = [
    "CATALOGUE",
    "DEFAULT_BASE_URL",
    "IDEMPOTENT_METHODS",
    "MAX_BATCH_ITEMS",
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APITimeoutError",
    "AccessDeniedError",
    "ApplicationInfo",
    "ApplicationNotFoundError",
    "AssociatedObject",
    "AssociationDefinition",
    "AssociationType",
    "AsyncClient",
    "AsyncOAuth",
    "AuthenticationError",
    "AuthorizationRequest",
    "Batch",
    "BatchError",
    "BatchItem",
    "CallbackError",
    "CatalogueEntry",
    "Client",
    "DataStoreError",
    "DatabaseError",
    "ExpiredTokenError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidOperationError",
    "InvalidParameterError",
    "InvalidRequestError",
    "InvalidScopeError",
    "Lang",
    "MethodNotFoundError",
    "OAuth",
    "OAuthError",
    "ObjectExistsError",
    "ObjectNotFoundError",
    "OpenPlatformError",
    "PermissionDeniedError",
    "PropertyDefinition",
    "PropertyType",
    "QuotaExceededError",
    "RateLimitError",
    "RedirectURIMismatchError",
    "RetryPolicy",
    "ServiceUnavailableError",
    "SignMethod",
    "TokenSet",
    "UnauthorizedClientError",
    "UnknownError",
    "UnsupportedGrantTypeError",
    "UnsupportedResponseTypeError",
    "UserInfo",
    "__version__",
    "canonical_string",
    "pkce_challenge",
    "pkce_verifier",
    "sign",
]
