"""The AWS IoT face: boto3's iot, iot-jobs-data, signer and s3 on otahub's port."""
