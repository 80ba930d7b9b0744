"""The experiment suite: context, statistics, report and runner."""
