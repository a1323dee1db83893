from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest


class UploadLimitHandler(FileUploadHandler):
    """First in the chain: a file past SCORM_MAX_PACKAGE_MB is dropped while it
    arrives, so no later handler spools more than the limit to a temporary file."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = settings.SCORM_MAX_PACKAGE_MB * 1024 * 1024
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


class PackageUploadForm(forms.Form):
    package = forms.FileField(
        label="SCORM package (.zip)",
        help_text="A SCORM 1.2 or SCORM 2004 zip with imsmanifest.xml at its top, as your authoring tool exports it.",
    )

    def __init__(self, *args: object, too_large: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.too_large = too_large
        self.fields["package"].help_text += f" At most {settings.SCORM_MAX_PACKAGE_MB} MB."

    def clean_package(self) -> object:
        upload = self.cleaned_data.get("package")
        if upload is None and self.too_large:
            raise forms.ValidationError(
                f"The file is larger than the {settings.SCORM_MAX_PACKAGE_MB} MB limit for one package."
            )
        return upload

    def full_clean(self) -> None:
        super().full_clean()
        if self.too_large and "package" in self.errors:
            self.errors["package"] = self.error_class(
                [f"The file is larger than the {settings.SCORM_MAX_PACKAGE_MB} MB limit for one package."]
            )
