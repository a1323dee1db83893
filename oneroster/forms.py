"""The roster zip upload form (the connection's own form is the admin's, in admin.py)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat


def upload_limit_text() -> str:
    return str(filesizeformat(settings.ONEROSTER_UPLOAD_MAX_BYTES))


class UploadLimitHandler(FileUploadHandler):
    """First in the chain: a file past ONEROSTER_UPLOAD_MAX_BYTES is dropped while it
    arrives, so no later handler spools more than the limit to a temporary file."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = settings.ONEROSTER_UPLOAD_MAX_BYTES
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise SkipFile()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


class RosterZipForm(forms.Form):
    zip_file = forms.FileField(
        label="Roster zip",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )

    def __init__(self, *args: object, too_large: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.too_large = too_large
        self.fields[
            "zip_file"
        ].help_text = f"A OneRoster CSV export (1.1 or 1.2) as one .zip file, at most {upload_limit_text()}."

    def clean_zip_file(self) -> object:
        upload = self.cleaned_data.get("zip_file")
        if upload is None and self.too_large:
            raise forms.ValidationError(f"The file is larger than the {upload_limit_text()} limit.")
        return upload

    def full_clean(self) -> None:
        super().full_clean()
        if self.too_large and "zip_file" in self.errors:
            # The browser sent a file; "This field is required" would not be true.
            self.errors["zip_file"] = self.error_class(
                [f"The file is larger than the {upload_limit_text()} limit."]
            )
