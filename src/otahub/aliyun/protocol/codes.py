"""Business error codes (HTTP 200, `Success:false`), documented in docs/aliyun-errors.md.

Alibaba publishes no list of `iot.ota.*` codes (specs §1.7), so the OTA codes are
otahub's own, in Alibaba's `iot.<area>.<Reason>` form. Codes outside `iot.ota` are
Alibaba's published ones, reused where they mean the same thing.
"""

from __future__ import annotations

from enum import Enum


class BusinessCode(Enum):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message

    # Alibaba's published codes.
    SYSTEM_EXCEPTION = ("iot.system.SystemException", "A system exception occurred.")
    ILLEGAL_REQUEST = ("iot.system.IllegalRequest", "The request is invalid.")
    INSTANCE_NOT_FOUND = ("iot.system.InstanceNotFound", "The instance does not exist.")
    INVALID_PAGE_PARAMS = ("iot.common.InvalidPageParams", "The paging parameters are invalid.")
    PERMISSION_DENIED = (
        "iot.common.RamActionPermissionDeny",
        "You are not authorized to perform this action.",
    )
    PRODUCT_NOT_FOUND = ("iot.prod.NotExistedProduct", "The product does not exist.")
    PRODUCT_NAME_EXISTS = (
        "iot.prod.AlreadyExistedProductName",
        "A product with this name already exists.",
    )
    DEVICE_NOT_FOUND = ("iot.device.NotExistedDevice", "The device does not exist.")
    DEVICE_NAME_EXISTS = (
        "iot.device.AlreadyExistedDeviceName",
        "A device with this name already exists.",
    )
    DEVICE_APPLY_NOT_FOUND = (
        "iot.device.DeviceApplyIsNotFound",
        "The device registration application does not exist.",
    )

    # otahub's generic codes for core errors raised without a specific code.
    RESOURCE_NOT_FOUND = ("iot.common.ResourceNotFound", "The resource does not exist.")
    RESOURCE_EXISTS = ("iot.common.ResourceAlreadyExists", "The resource already exists.")
    LIMIT_EXCEEDED = ("iot.common.LimitExceeded", "A quota or size limit would be exceeded.")
    RESOURCE_IN_USE = ("iot.common.ResourceInUse", "The resource is in use.")
    CONCURRENT_MODIFICATION = (
        "iot.common.ConcurrentModification",
        "The resource was changed by another request; retry.",
    )
    INVALID_STATUS = (
        "iot.common.InvalidStatus",
        "The resource's status does not allow this action.",
    )

    # OTA: firmware.
    FIRMWARE_NOT_FOUND = ("iot.ota.FirmwareNotFound", "The firmware does not exist.")
    FIRMWARE_NAME_EXISTS = (
        "iot.ota.FirmwareNameExists",
        "A firmware with this name already exists.",
    )
    FIRMWARE_COUNT_EXCEEDED = (
        "iot.ota.FirmwareCountExceeded",
        "The account already has the maximum number of firmware packages.",
    )
    FIRMWARE_VERIFY_STATUS_ERROR = (
        "iot.ota.FirmwareVerifyStatusError",
        "The firmware's verification status does not allow this action.",
    )
    FIRMWARE_IN_USE = (
        "iot.ota.FirmwareInUse",
        "The firmware has jobs in progress and cannot be changed or deleted.",
    )
    FIRMWARE_URL_INVALID = (
        "iot.ota.FirmwareUrlInvalid",
        "The firmware URL does not point to an uploaded file, or the upload has expired.",
    )
    FIRMWARE_SIZE_EXCEEDED = (
        "iot.ota.FirmwareSizeExceeded",
        "The firmware file is larger than allowed.",
    )
    INVALID_FIRMWARE_FILES = (
        "iot.ota.InvalidFirmwareFiles",
        "Give either FirmwareUrl or MultiFiles, with unique file names.",
    )
    INVALID_SRC_VERSION = (
        "iot.ota.InvalidSrcVersion",
        "A differential package needs a SrcVersion different from its DestVersion.",
    )
    INVALID_SIGN = (
        "iot.ota.InvalidFirmwareSign",
        "FirmwareSign does not match the uploaded file or the SignMethod.",
    )
    PRODUCT_MISMATCH = (
        "iot.ota.ProductKeyMismatch",
        "The firmware or job belongs to another product.",
    )

    # OTA: modules.
    MODULE_NOT_FOUND = ("iot.ota.ModuleNotFound", "The OTA module does not exist.")
    MODULE_EXISTS = (
        "iot.ota.ModuleAlreadyExists",
        "An OTA module with this name (ignoring case) already exists in the product.",
    )
    MODULE_COUNT_EXCEEDED = (
        "iot.ota.ModuleCountExceeded",
        "The product already has the maximum number of OTA modules.",
    )
    MODULE_IN_USE = (
        "iot.ota.ModuleInUse",
        "The OTA module has firmware and cannot be deleted.",
    )
    DEFAULT_MODULE_IMMUTABLE = (
        "iot.ota.DefaultModuleImmutable",
        "The default module cannot be created, changed or deleted.",
    )

    # OTA: jobs.
    JOB_NOT_FOUND = ("iot.ota.JobNotFound", "The OTA job does not exist.")
    JOB_STATUS_ERROR = (
        "iot.ota.JobStatusError",
        "The job's status does not allow this action.",
    )
    JOB_TYPE_ERROR = (
        "iot.ota.JobTypeError",
        "This action is not valid for this type of job.",
    )
    DYNAMIC_JOB_EXISTS = (
        "iot.ota.DynamicJobExists",
        "The firmware already has a running dynamic upgrade job.",
    )
    INVALID_TARGET = (
        "iot.ota.InvalidTargetSelection",
        "The target parameters do not fit the TargetSelection.",
    )
    INVALID_SCHEDULE = (
        "iot.ota.InvalidScheduleTime",
        "ScheduleTime or ScheduleFinishTime is outside the allowed window.",
    )
    INVALID_RETRY = (
        "iot.ota.InvalidRetryPolicy",
        "RetryInterval and RetryCount must be given together and fit the timeout.",
    )
    INVALID_TAG = (
        "iot.ota.InvalidTag",
        "Tags need a Key (letters, digits, '.') and a Value; at most 10, 4096 characters.",
    )
    INVALID_DOWNLOAD_PROTOCOL = (
        "iot.ota.DownloadProtocolNotSupported",
        "MQTT download needs a single-file package of at most 16 MB.",
    )
    GROUP_NOT_FOUND = ("iot.ota.GroupNotFound", "The device group does not exist.")
    DEVICE_LIST_FILE_INVALID = (
        "iot.ota.DeviceListFileInvalid",
        "The device list file is missing, expired or not a valid list.",
    )
    VERIFY_DEVICE_COUNT_EXCEEDED = (
        "iot.ota.VerifyDeviceCountExceeded",
        "A verify job takes 1 to 10 devices.",
    )
    DEVICE_COUNT_EXCEEDED = (
        "iot.ota.DeviceCountExceeded",
        "Too many devices in one request.",
    )
    DUPLICATE_DEVICE = ("iot.ota.DuplicateDevice", "A device name is given more than once.")
    DEVICE_IN_OTHER_TASK = (
        "iot.ota.DeviceInOtherTask",
        "The device already has a pending or running upgrade task.",
    )
    DEVICE_VERSION_MISMATCH = (
        "iot.ota.DeviceVersionMismatch",
        "The device's current version is not the package's source version.",
    )
    NO_DEVICE_MATCHED = (
        "iot.ota.NoDeviceMatched",
        "No device matches the job's targets.",
    )

    # OTA: tasks.
    TASK_NOT_FOUND = ("iot.ota.TaskNotFound", "The OTA task does not exist.")
    TASK_STATUS_ERROR = (
        "iot.ota.TaskStatusError",
        "The task's status does not allow this action.",
    )
    TASK_COUNT_EXCEEDED = ("iot.ota.TaskCountExceeded", "At most 10 tasks per request.")
    TASK_NOT_IN_JOB = ("iot.ota.TaskNotInJob", "The task does not belong to this job.")
    CANCEL_FLAG_REQUIRED = (
        "iot.ota.CancelFlagRequired",
        "Set at least one Cancel*Task parameter to true.",
    )

    # OTA: uploads.
    UPLOAD_EXPIRED = (
        "iot.ota.UploadExpired",
        "The uploaded file was not used within 60 minutes and has been removed.",
    )


BY_CODE: dict[str, BusinessCode] = {c.code: c for c in BusinessCode}
