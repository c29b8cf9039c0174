"""The course's grading package: releases assignments and grades submissions."""
