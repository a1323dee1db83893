from __future__ import annotations

from django import forms


class PackageUploadForm(forms.Form):
    package = forms.FileField(
        label="SCORM package (.zip)",
        help_text="A SCORM 1.2 or SCORM 2004 zip with imsmanifest.xml at its top, as your authoring tool exports it.",
    )
