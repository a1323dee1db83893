from __future__ import annotations

from django.db import models

from tutoring_core.accounts.fields import EncryptedTextField


class SecretThing(models.Model):
    name = models.CharField(max_length=50)
    secret = EncryptedTextField(blank=True)

    class Meta:
        ordering = ["name"]
