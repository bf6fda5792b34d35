"""The adversarial suite: hostile mail, hostile servers, crashes, concurrency, secrets."""
