"""The benchmark's baseline Lambda function (its code folder; RIE imports ``app`` from here)."""
