"""Logging shared by every layer (neutral: handlers, service and store may all import it)."""

from aws_lambda_powertools import Logger

logger = Logger(service="ab-testing")
