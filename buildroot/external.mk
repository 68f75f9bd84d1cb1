# StreamPulse BR2_EXTERNAL tree: pull in our packages.
include $(sort $(wildcard $(BR2_EXTERNAL_STREAMPULSE_PATH)/package/*/*.mk))
