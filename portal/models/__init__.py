"""The one model both faces share. Importing this package registers every table."""
from . import radius  # noqa: F401 — FreeRADIUS's tables
from .accounts import (  # noqa: F401
    RIGHTS,
    AuthSession,
    CustomerLogin,
    Face,
    LoginEvent,
    LoginRole,
    LoginState,
    OneTimeCode,
    Operator,
    PasswordResetToken,
    Right,
    Role,
)
from .agreements import (  # noqa: F401
    AcceptanceMethod,
    Agreement,
    AgreementAcceptance,
    AgreementState,
    AgreementType,
    Numbering,
)
from .api import ApiToken, IdempotentAnswer  # noqa: F401
from .audit import AuditEntry  # noqa: F401
from .base import Base  # noqa: F401
from .billing import (  # noqa: F401
    BillingRun,
    BillingRunState,
    Charge,
    ChargeKind,
    Invoice,
    InvoiceLine,
    InvoiceState,
    InvoiceType,
    InvoiceVat,
    Payment,
    PaymentAllocation,
    PaymentSource,
    PaymentState,
    StatementFormat,
    StatementImport,
)
from .catalog import (  # noqa: F401
    BillingPlan,
    Delivery,
    Discount,
    DiscountKind,
    NumberSequence,
    PaymentMethod,
    Period,
    PriceChange,
    ServiceDefinition,
    ServiceGroup,
    ServiceGroupKind,
)
from .customers import (  # noqa: F401
    AddressKind,
    Contact,
    ContactKind,
    ContactPurpose,
    Currency,
    Customer,
    CustomerAddress,
    CustomerGroup,
    CustomerKind,
    Language,
    Location,
    Partner,
)
from .documents import DocumentKind, EmailState, Job, JobState, OutboundEmail, StoredDocument  # noqa: F401
from .dunning import (  # noqa: F401
    BlockingException,
    CaseState,
    DebtRecoveryCase,
    ExceptionKind,
    Reminder,
    ReminderLevel,
)
from .network import Desired, IpPool, NetworkIdentity, NetworkState, ProvisioningChange  # noqa: F401
from .requests import CustomerRequest, RequestAttachment, RequestComment, RequestKind, RequestState  # noqa: F401
from .services import (  # noqa: F401
    ActorType,
    Aggregation,
    CustomerService,
    Rounding,
    ServiceEvent,
    ServiceEventKind,
    ServiceState,
    UsageInstance,
    UsageItem,
    UsageReading,
    UsageTracker,
)
from .webhooks import DeliveryState, WebhookDelivery, WebhookEndpoint, WebhookEvent  # noqa: F401
